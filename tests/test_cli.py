"""The ``clothseg`` commands through click's CliRunner: segment, resume, post-processing,
exit codes and error messages. End-to-end runs in real processes are in test_cli_e2e.py."""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from clothseg_tools import CLASSES, MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.batch import read_manifest
from clothseg_tools.cli import main
from clothseg_tools.engines.replay import record

GOOD = ("a/shirt.png", "b/shirt.png", "c.png", "d.jpg", "e/f/g.png")


def photo(seed: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)


def masks_for(image: np.ndarray) -> MaskSet:
    """Deterministic masks that depend on the picture (so different photos differ)."""
    tops, bottoms = image[..., 0] > 128, image[..., 1] > 170
    return MaskSet({
        "tops": tops,
        "bottoms": bottoms,
        "clothes": tops | bottoms,  # garments lie inside clothes, as the service returns them
        "hair": (image[..., 2] // 2 + 10).astype(np.uint8),
    })  # fmt: skip


def make_inputs(root: Path, *, record_dir: Path | None = None, bad: bool = True) -> dict[str, Path]:
    """A folder of photos: good ones (two same-named in different folders) and bad ones.

    Good photos are recorded for the replay engine in ``record_dir``.
    """
    paths = {}
    for i, name in enumerate(GOOD):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        img = photo(i)
        if name.endswith(".jpg"):
            Image.fromarray(img).save(path, format="JPEG", quality=95)
            img = np.asarray(Image.open(path).convert("RGB"))
        else:
            path.write_bytes(encode_png(img))
        if record_dir is not None:
            parts = {"tops_0": img[..., 0] > 200, "tops_1": img[..., 0] > 240}
            record(record_dir, path.read_bytes(), masks_for(img), parts)
        paths[name] = path
    if bad:
        (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        # over 4096 pixels on a side: tiny file, refused before decoding the pixels
        (root / "too_wide.png").write_bytes(encode_png(np.zeros((1, 4097), np.uint8)))
        # over 20 MB: a sparse file that starts like a PNG
        with open(root / "huge.png", "wb") as fh:
            fh.write(b"\x89PNG\r\n\x1a\n")
            fh.truncate(21 * 1024 * 1024)
        paths.update(
            corrupt=root / "corrupt.jpg", too_wide=root / "too_wide.png", huge=root / "huge.png"
        )
    return paths


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """``(photos folder, replay record folder)``."""
    photos, rec = tmp_path / "photos", tmp_path / "rec"
    make_inputs(photos, record_dir=rec)
    return photos, rec


def run(*args: object, code: int | None = None) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def segment(photos: Path, out: Path, rec: Path, *extra: object, code: int | None = None):
    return run(
        "segment",
        photos,
        "--out",
        out,
        "--engine",
        "replay",
        "--replay-dir",
        rec,
        *extra,
        code=code,
    )


# -- the group ------------------------------------------------------------------------------


def test_help_lists_every_command_with_one_line():
    out = run("--help", code=0).output
    for command in (
        "segment",
        "merge",
        "labelmap",
        "cutout",
        "background",
        "overlay",
        "stats",
        "coco",
        "report",
        "demo",
        "serve",
    ):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(command + " "))
        assert len(line.split(None, 1)[1]) > 10, line


@pytest.mark.parametrize(
    "command",
    [
        "segment",
        "merge",
        "labelmap",
        "cutout",
        "background",
        "overlay",
        "stats",
        "coco",
        "report",
        "demo",
    ],
)
def test_every_command_has_help(command):
    assert "Usage: " in run(command, "--help", code=0).output


# -- segment --------------------------------------------------------------------------------


def test_segment_records_every_input_done_or_failed_with_its_reason(inputs, tmp_path):
    photos, rec = inputs
    out = tmp_path / "out"
    result = segment(photos, out, rec, "--output-type", "3", code=1)
    records = read_manifest(out / "manifest.jsonl")
    by_key = {r["key"]: r for r in records.values()}
    assert set(by_key) == {"a/shirt", "b/shirt", "c", "d", "e/f/g", "corrupt", "too_wide", "huge"}
    errors = {k: r["error"]["type"] for k, r in by_key.items() if r["status"] == "failed"}
    assert errors == {
        "corrupt": "ImageDecodeError",
        "too_wide": "ImageTooLargeError",
        "huge": "FileTooLargeError",
    }
    assert "4096" in by_key["too_wide"]["error"]["message"]
    assert "20 MB" in by_key["huge"]["error"]["message"]
    for key in ("a/shirt", "b/shirt", "c", "d", "e/f/g"):
        folder = out / key
        assert (folder / "result.json").is_file() and (folder / "parts" / "tops_0.png").is_file()
        assert by_key[key]["checksums"][f"{key}/result.json"]
    # same-named photos in different folders keep different results
    assert (out / "a/shirt/tops.png").read_bytes() != (out / "b/shirt/tops.png").read_bytes()
    assert "failed" in result.output and "ImageDecodeError" in result.output


def test_saved_masks_are_what_the_engine_returned(inputs, tmp_path):
    photos, rec = inputs
    out = tmp_path / "out"
    segment(photos / "c.png", out, rec, "--class-type", "4", code=0)
    saved = MaskSet.load(out / "c")
    expected = masks_for(photo(2))
    for name in expected:
        np.testing.assert_array_equal(saved[name], expected[name])
    assert saved.classes[:3] == ("hair", "face", "head")  # class_type 4: all twelve


def test_rerun_skips_complete_outputs_and_retry_failed_touches_only_failures(inputs, tmp_path):
    photos, rec = inputs
    out = tmp_path / "out"
    segment(photos, out, rec, code=1)
    done_files = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    lines = (out / "manifest.jsonl").read_text().splitlines()

    again = segment(photos, out, rec, code=1)  # earlier failures still count
    assert "skipped (complete)" in again.output
    assert (out / "manifest.jsonl").read_text().splitlines() == lines  # nothing redone

    # repair one failure, then retry: only the three failures run, the rest stay untouched
    img = photo(99)
    (photos / "corrupt.jpg").write_bytes(encode_png(img))
    record(rec, (photos / "corrupt.jpg").read_bytes(), masks_for(img))
    segment(photos, out, rec, "--retry-failed", code=1)
    new = (out / "manifest.jsonl").read_text().splitlines()[len(lines) :]
    assert sorted(json.loads(n)["key"] for n in new) == ["corrupt", "huge", "too_wide"]
    assert {p: p.stat().st_mtime_ns for p in done_files} == done_files
    assert read_manifest(out / "manifest.jsonl")[str(photos / "corrupt.jpg")]["status"] == "done"


def test_all_done_exits_0_and_a_damaged_output_is_redone(inputs, tmp_path):
    photos, rec = inputs
    out = tmp_path / "out"
    good = [photos / name for name in GOOD]
    run("segment", *good, "--out", out, "--engine", "replay", "--replay-dir", rec, code=0)
    original = (out / "c" / "tops.png").read_bytes()
    (out / "c" / "tops.png").write_bytes(b"damaged")
    result = run("segment", *good, "--out", out, "--engine", "replay", "--replay-dir", rec, code=0)
    assert (out / "c" / "tops.png").read_bytes() == original
    assert "done                        1" in result.output


def test_other_options_redo_and_overwrite_redoes_everything(inputs, tmp_path):
    photos, rec = inputs
    out = tmp_path / "out"
    segment(photos / "c.png", out, rec, code=0)
    assert not (out / "c" / "body.png").exists()
    segment(photos / "c.png", out, rec, "--class-type", "3", code=0)
    assert (out / "c" / "body.png").is_file()
    lines = len((out / "manifest.jsonl").read_text().splitlines())
    segment(photos / "c.png", out, rec, "--class-type", "3", "--overwrite", code=0)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == lines + 1


def test_output_folder_inside_the_inputs_is_not_read_back(inputs):
    photos, rec = inputs
    segment(photos, photos / "out", rec, code=1)
    result = segment(photos, photos / "out", rec, code=1)
    assert "8 items" in result.output  # the masks written under photos/out are not inputs


def test_text_list_of_inputs(inputs, tmp_path):
    photos, rec = inputs
    listing = tmp_path / "todo.txt"
    listing.write_text("photos/c.png\nphotos/missing.png\n")
    out = tmp_path / "out"
    segment(listing, out, rec, code=1)
    records = read_manifest(out / "manifest.jsonl")
    assert records[str(photos / "c.png")]["status"] == "done"
    error = records[str(photos / "missing.png")]["error"]
    # the failure names the list file and the line to fix
    assert error["type"] == "InputNotFoundError"
    assert f"listed in {listing} line 2" in error["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["segment", "{tmp}/nothing", "--out", "{tmp}/o", "--engine", "replay"],
            "Error: InputNotFoundError: Input",
        ),
        (
            ["segment", "{photos}", "--out", "{tmp}/o", "--engine", "replay"],
            "Error: ConfigurationError: The replay engine needs",
        ),
        (
            ["segment", "{photos}", "--out", "{tmp}/o", "--engine", "remote"],
            "Error: ConfigurationError: The remote backend needs an API key",
        ),
        (
            [
                "segment",
                "{photos}",
                "--out",
                "{tmp}/o",
                "--engine",
                "replay",
                "--replay-dir",
                "{tmp}/no-records",
            ],
            "Error: ConfigurationError: Replay folder",
        ),
        (["segment", "{photos}", "--out", "{tmp}/o", "--class-type", "9"], "Invalid value"),
        (["segment", "--out", "{tmp}/o"], "Missing argument"),
        (["merge", "{tmp}/empty"], "holds no results"),
        (["background", "{tmp}/empty", "--color", "red", "--blur"], "Choose one background"),
    ],
)
def test_usage_and_configuration_errors_exit_2_without_traceback(
    inputs, tmp_path, monkeypatch, args, message
):
    monkeypatch.delenv("CLOTHSEG_API_KEY", raising=False)
    (tmp_path / "empty").mkdir()
    photos, _ = inputs
    filled = [a.format(tmp=tmp_path, photos=photos) for a in args]
    result = run(*filled, code=2)
    assert message in result.output


def test_api_key_never_appears_in_the_output(inputs, tmp_path, monkeypatch):
    photos, _ = inputs
    monkeypatch.delenv("CLOTHSEG_BASE_URL", raising=False)
    result = run("segment", photos, "--out", tmp_path / "o", "--api-key", "s3cret-key-123", code=2)
    assert "base URL" in result.output or "address" in result.output
    assert "s3cret-key-123" not in result.output


# -- post-processing --------------------------------------------------------------------------


@pytest.fixture
def results(inputs, tmp_path) -> Path:
    photos, rec = inputs
    out = tmp_path / "results"
    segment(photos, out, rec, "--class-type", "4", "--output-type", "3", code=1)
    return out


@pytest.mark.parametrize(
    ("args", "name", "mode", "manifest"),
    [
        (["merge"], "merged.png", "L", "manifest-merge.jsonl"),
        (["merge", "--classes", "hair"], "merged.png", "L", "manifest-merge.jsonl"),
        (["labelmap"], "labels.png", "P", "manifest-labelmap.jsonl"),
        (["cutout"], "cutout.png", "RGBA", "manifest-cutout.jsonl"),
        (
            ["cutout", "--decontaminate", "--name", "clean.png"],
            "clean.png",
            "RGBA",
            "manifest-cutout-clean.png.jsonl",
        ),
        (
            ["background", "--color", "#00ff00"],
            "background.png",
            "RGB",
            "manifest-background.jsonl",
        ),
        (
            ["background", "--blur", "--name", "blur.jpg"],
            "blur.jpg",
            "RGB",
            "manifest-background-blur.jpg.jsonl",
        ),
        (["overlay", "--alpha", "0.7"], "overlay.png", "RGB", "manifest-overlay.jsonl"),
    ],
)
def test_post_commands_write_one_file_per_result(results, args, name, mode, manifest):
    run(*args, results, code=0)
    for key in ("a/shirt", "b/shirt", "c", "d", "e/f/g"):
        with Image.open(results / key / name) as im:
            assert im.mode == mode and im.size == (64, 48)
    records = read_manifest(results / manifest)
    assert len(records) == 5 and all(r["status"] == "done" for r in records.values())


def test_merge_is_the_pixelwise_maximum(results):
    run("merge", results, "--classes", "tops,bottoms", code=0)
    merged = np.asarray(Image.open(results / "c" / "merged.png"))
    m = masks_for(photo(2))
    np.testing.assert_array_equal(merged, np.maximum(m["tops"], m["bottoms"]))


def test_labelmap_labels_follow_the_vocabulary_and_specific_classes_win(results):
    run("labelmap", results, code=0)
    labels = np.asarray(Image.open(results / "c" / "labels.png"))
    m = masks_for(photo(2))
    tops, bottoms, hair = (m[k] >= 128 for k in ("tops", "bottoms", "hair"))
    # label i = CLASSES[i - 1]; hair wins over garments, tops over bottoms, and the
    # specific garments over the clothes that contain them (LABEL_PRIORITY)
    expected = np.zeros(labels.shape, np.uint8)
    expected[bottoms] = CLASSES.index("bottoms") + 1
    expected[tops] = CLASSES.index("tops") + 1
    expected[hair] = CLASSES.index("hair") + 1
    np.testing.assert_array_equal(labels, expected)


def test_cutout_alpha_is_the_garment_mask_and_colours_are_the_photo(results):
    run("cutout", results, "--classes", "tops", code=0)
    rgba = np.asarray(Image.open(results / "c" / "cutout.png"))
    np.testing.assert_array_equal(rgba[..., 3], masks_for(photo(2))["tops"])
    np.testing.assert_array_equal(rgba[..., :3], photo(2))


def test_background_picture_is_fitted_to_each_photo(results, tmp_path):
    backdrop = tmp_path / "beach.png"
    backdrop.write_bytes(encode_png(np.full((300, 500, 3), 77, np.uint8)))
    run("background", results, "--image", backdrop, "--classes", "tops", code=0)
    out = np.asarray(Image.open(results / "c" / "background.png"))
    tops = masks_for(photo(2))["tops"]
    np.testing.assert_array_equal(out[tops == 0], 77)
    np.testing.assert_array_equal(out[tops == 255], photo(2)[tops == 255])


def test_post_command_reruns_skip_and_a_resegmented_image_is_redone(results, inputs):
    photos, rec = inputs
    run("overlay", results, code=0)
    first = (results / "manifest-overlay.jsonl").read_text().splitlines()
    assert "skipped (complete)" in run("overlay", results, code=0).output
    assert (results / "manifest-overlay.jsonl").read_text().splitlines() == first
    # segmenting c again with other options changes its result: its overlay is redone
    segment(photos / "c.png", results, rec, "--class-type", "1", code=0)
    run("overlay", results, code=0)
    new = (results / "manifest-overlay.jsonl").read_text().splitlines()[len(first) :]
    assert [json.loads(n)["key"] for n in new] == ["c"]


def test_missing_photo_is_a_failed_line_not_a_crash(results, inputs):
    photos, _ = inputs
    (photos / "d.jpg").unlink()
    result = run("cutout", results, code=1)
    rec = read_manifest(results / "manifest-cutout.jsonl")[str(results / "d")]
    assert rec["status"] == "failed" and rec["error"]["type"] == "FileNotFoundError"
    assert "no longer there" in rec["error"]["message"]
    assert "retry-failed" in result.output


def test_stats_writes_per_image_csv_and_dataset_summary(results):
    result = run("stats", results, "--components", code=0)
    assert "stats.csv" in result.output
    with open(results / "stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 * 12  # five images, class_type 4
    row = next(r for r in rows if r["image"] == "c" and r["class"] == "tops")
    tops = masks_for(photo(2))["tops"]
    assert int(row["pixels"]) == int((tops >= 128).sum())
    assert row["components"] != ""
    doc = json.loads((results / "stats.json").read_text())
    assert doc["images"] == 5 and doc["failed"] == []
    assert doc["summary"]["tops"]["presence_rate"] == 1.0
    assert doc["summary"]["face"]["present"] == 0
    with open(results / "stats_summary.csv", newline="") as fh:
        assert {r["class"] for r in csv.DictReader(fh)} >= {"tops", "hair", "face"}


def test_post_outputs_can_go_to_another_root(results, tmp_path):
    run("overlay", results, "--out", tmp_path / "review", code=0)
    assert (tmp_path / "review" / "a" / "shirt" / "overlay.png").is_file()
    assert (tmp_path / "review" / "manifest-overlay.jsonl").is_file()
    assert not (results / "a" / "shirt" / "overlay.png").exists()


# -- report ---------------------------------------------------------------------------------


def _coco_masks(path, file_prefix, category):
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    img = next(i for i in coco.dataset["images"] if i["file_name"].startswith(file_prefix))
    cat = next(c["id"] for c in coco.dataset["categories"] if c["name"] == category)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]], catIds=[cat]))
    return coco, [coco.annToMask(a).astype(bool) for a in anns]


def test_coco_export_of_a_results_folder_loads_in_pycocotools(results, tmp_path):
    out = tmp_path / "coco.json"
    res = run("coco", results, "--out", out, "--no-parts", code=0)
    assert "5 images" in res.output
    coco, tops = _coco_masks(out, "c.", "tops")
    assert len(coco.dataset["images"]) == 5  # nested results (a/shirt, e/f/g) included
    names = sorted(i["file_name"] for i in coco.dataset["images"])
    # the two shirt.png from folders a and b stay apart: paths relative to the results
    assert names == ["a/shirt.png", "b/shirt.png", "c.png", "d.jpg", "e/f/g.png"]
    assert len(tops) == 1
    np.testing.assert_array_equal(tops[0], masks_for(photo(2))["tops"] >= 128)
    # by default each saved garment part is its own annotation
    parts_out = tmp_path / "parts.json"
    run("coco", results, "--out", parts_out, code=0)
    _, tops_parts = _coco_masks(parts_out, "c.", "tops")
    red = photo(2)[..., 0]
    assert len(tops_parts) == 2
    assert {int(m.sum()) for m in tops_parts} == {int((red > 200).sum()), int((red > 240).sum())}
    # polygons load too (on these noise masks they only approximate the pixels)
    poly_out = tmp_path / "poly.json"
    run("coco", results, "--out", poly_out, "--encoding", "polygon", "--mode", "semantic", code=0)
    _, poly_tops = _coco_masks(poly_out, "c.", "tops")
    assert poly_tops and all(m.any() for m in poly_tops)


EMPTY_FOLDER_COMMANDS = [
    ["segment", "{folder}", "--out", "{tmp}/out"],
    ["merge", "{folder}"],
    ["labelmap", "{folder}"],
    ["cutout", "{folder}"],
    ["background", "{folder}", "--color", "white"],
    ["overlay", "{folder}"],
    ["stats", "{folder}"],
    ["coco", "{folder}"],
    ["export", "{folder}", "--format", "yolo", "--out", "{tmp}/exported"],
    ["tryon", "{folder}", "--category", "upper_body"],
    ["report", "{folder}"],
]


@pytest.mark.parametrize("args", EMPTY_FOLDER_COMMANDS, ids=lambda a: a[0])
def test_every_command_refuses_an_empty_folder_the_same_way(tmp_path, args):
    folder = tmp_path / "empty"
    folder.mkdir()
    res = run(*[a.format(folder=folder, tmp=tmp_path) for a in args], code=2)
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: InputNotFoundError: "), res.output
    assert str(folder) in lines[0] or args[0] == "segment"
    assert not any(folder.iterdir()), "nothing may be written into an empty folder"


@pytest.mark.parametrize("args", EMPTY_FOLDER_COMMANDS[1:], ids=lambda a: a[0])
def test_a_folder_whose_images_all_failed_points_at_the_manifest(inputs, tmp_path, args):
    _, rec = inputs
    out = tmp_path / "out"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"not a png")
    segment(bad, out, rec, code=1)
    res = run(*[a.format(folder=out, tmp=tmp_path) for a in args], code=2)
    [line] = res.output.splitlines()
    assert "the 1 images in" in line and "manifest.jsonl failed" in line
    assert "--retry-failed" in line


def test_report_command(results):
    run("overlay", results, code=0)
    result = run("report", results, "--title", "Spring shoot", code=0)
    page = results / "report.html"
    assert str(page) in result.output and page.resolve().as_uri() in result.output
    text = page.read_text()
    assert "Spring shoot" in text and "FileTooLargeError" in text


def test_url_inputs_are_fetched_and_their_secrets_never_written(inputs, tmp_path, http_server):
    photos, rec = inputs
    url = http_server.add_file("/img/c.png", photos / "c.png", content_type="image/png")
    out = tmp_path / "out"
    segment(url + "?X-Signature=top-secret", out, rec, code=0)
    assert (out / "c" / "result.json").is_file()
    for path in out.rglob("*.json*"):
        assert "top-secret" not in path.read_text()
    [rec_] = read_manifest(out / "manifest.jsonl").values()
    assert rec_["source"].startswith(url) and rec_["status"] == "done"


def test_serve_says_what_to_install_when_the_server_package_cannot_load(monkeypatch):
    import sys

    import clothseg_tools.cli as cli_module

    monkeypatch.setitem(sys.modules, "clothseg_tools.server.cli", None)
    command = cli_module._serve_command()
    result = CliRunner().invoke(command, ["--port", "1"])
    assert result.exit_code == 1
    assert "pip install 'clothseg_tools[server]'" in result.output


def test_without_key_or_local_engine_the_message_says_what_to_install(
    inputs, tmp_path, monkeypatch
):
    import clothseg_tools.engines as engines

    photos, _ = inputs
    monkeypatch.delenv("CLOTHSEG_API_KEY", raising=False)
    monkeypatch.delenv("CLOTHSEG_REPLAY_DIR", raising=False)
    monkeypatch.setattr(engines, "default_engine_name", lambda: "replay")
    result = run("segment", photos, "--out", tmp_path / "o", code=2)
    assert "Error: EngineUnavailableError:" in result.output
    assert "pip install 'clothseg_tools[local]'" in result.output


# -- what segment says: engine, classes, skipped files, log levels, workers ------------------


def test_segment_names_its_engine_and_classes_at_the_start_and_in_the_summary(inputs, tmp_path):
    photos, rec = inputs
    res = segment(photos / "a", tmp_path / "out", rec, code=0)
    asked = "with the replay engine, asking for class_type 1: clothes, tops, bottoms, dress, acc"
    first, *rest = res.output.splitlines()
    assert first.startswith("Segmenting 1 images " + asked)
    assert any(line.strip().startswith(asked) for line in rest), res.output
    assert "--class-type 4 asks for all twelve" in first
    every = segment(photos / "a", tmp_path / "all", rec, "--class-type", "4", code=0)
    assert f"asking for class_type 4: {', '.join(CLASSES)};" in every.output
    assert "asks for all twelve" not in every.output


def test_files_that_are_not_images_are_listed_as_skipped_with_their_reason(inputs, tmp_path):
    photos, rec = inputs
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "look.png").write_bytes((photos / "c.png").read_bytes())
    Image.new("P", (4, 4)).save(folder / "anim.gif")
    (folder / "notes.txt").write_text("shot on a Tuesday")
    (folder / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "out"
    res = segment(folder, out, rec, code=0)
    assert "skipped (not an image)      2" in res.output
    assert f"skipped: {folder / 'anim.gif'}: unsupported file type '.gif'" in res.output
    assert f"skipped: {folder / 'notes.txt'}: unsupported file type '.txt'" in res.output
    assert ".DS_Store" not in res.output
    records = read_manifest(out / "manifest.jsonl")
    assert records[str(folder / "anim.gif")] | {"finished_at": None} == {
        "source": str(folder / "anim.gif"),
        "key": None,
        "command": "segment",
        "status": "skipped",
        "reason": "unsupported file type '.gif'",
        "finished_at": None,
    }
    assert records[str(folder / "look.png")]["status"] == "done"
    lines = (out / "manifest.jsonl").read_text().count("\n")
    again = segment(folder, out, rec, code=0)  # a rerun lists them again, writes nothing new
    assert "skipped (not an image)      2" in again.output
    assert (out / "manifest.jsonl").read_text().count("\n") == lines
    # the report's failure table is for failures only
    run("report", out, code=0)
    assert "anim.gif" not in (out / "report.html").read_text()


def test_a_folder_of_only_unsupported_files_is_refused_saying_so(tmp_path):
    folder = tmp_path / "gifs"
    folder.mkdir()
    Image.new("P", (4, 4)).save(folder / "anim.gif")
    res = run("segment", folder, "--out", tmp_path / "out", code=2)
    assert res.output.splitlines() == [
        "Error: InputNotFoundError: The inputs hold no supported image files (1 other files "
        "passed over); name photos or folders of photos (jpg, png, webp, bmp, tiff)."
    ]


def test_verbosity_flags_show_the_librarys_log_records(inputs, tmp_path):
    photos, rec = inputs
    quiet = segment(photos / "a", tmp_path / "q", rec, "--quiet", code=0)
    assert quiet.output == ""
    normal = segment(photos / "a", tmp_path / "n", rec, code=0)
    assert "INFO" not in normal.output and "DEBUG" not in normal.output
    res = run("-v", "segment", photos / "a", "--out", tmp_path / "v", "--engine", "replay",
              "--replay-dir", rec, code=0)  # fmt: skip
    assert re.search(r"^INFO clothseg_tools: segment shirt: done in \d+\.\d{3} s \(decode ",
                     res.output, re.M), res.output  # fmt: skip
    # failures stay errors worth showing with --quiet: they go to stderr as before
    failed = segment(photos, tmp_path / "f", rec, "--quiet", code=1)
    assert "failed: " in failed.output and "segment:" not in failed.output


def test_logging_is_put_back_after_a_command():
    logger = logging.getLogger("clothseg_tools")
    before = (logger.level, list(logger.handlers))
    run("-vv", "--help", code=0)
    run("coco", "--help", code=0)
    assert (logger.level, list(logger.handlers)) == before


def test_dash_vv_shows_every_request_and_every_retry(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from clothseg_tools import server

    photos, rec = tmp_path / "photos", tmp_path / "rec"
    make_inputs(photos, record_dir=rec, bad=False)
    with server.run_in_thread(
        engine="replay",
        engine_options={"replay_dir": rec},
        api_keys=("k-123456",),
        faults={"status=503;retry_after=0": 0.5},
        fault_seed=3,
        test_controls=True,
    ) as url:
        res = CliRunner().invoke(
            main,
            ["-vv", "segment", str(photos / "a"), "--out", str(tmp_path / "out"), "-w", "1"],
            env={"CLOTHSEG_API_KEY": "k-123456", "CLOTHSEG_BASE_URL": url},
        )
    text = res.output
    assert "Segmenting 1 images with the remote service at http://127.0.0.1:" in text
    assert re.search(r"DEBUG clothseg_tools[.a-z]*: POST /api/tasks/visual/clothing-segmentation "
                     r"-> HTTP 200 in \d", text), text  # fmt: skip
    assert re.search(
        r"INFO clothseg_tools[.a-z]*: creating a task got status 503; retry 1 of 3", text
    )
    assert "k-123456" not in text


def test_default_workers_follow_the_engine(monkeypatch):
    from clothseg_tools.batch import runner
    from clothseg_tools.batch.segment import REMOTE_WORKERS, default_workers

    monkeypatch.setattr(runner.os, "process_cpu_count", lambda: 3, raising=False)
    assert runner.available_cpus() == 3
    assert default_workers("local") == default_workers("replay") == 3
    assert default_workers("remote") == REMOTE_WORKERS > 3
    monkeypatch.delattr(runner.os, "process_cpu_count", raising=False)
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert runner.available_cpus() == 2
    help_text = " ".join(run("segment", "--help", code=0).output.split())
    assert "the CPU cores available for an in-process engine" in help_text
    assert f"{REMOTE_WORKERS} for the remote service" in help_text
    assert "the CPU cores available" in " ".join(run("cutout", "--help", code=0).output.split())


def test_segment_uses_as_many_workers_as_cores_for_an_in_process_engine(
    inputs, tmp_path, monkeypatch
):
    from clothseg_tools.batch import runner

    monkeypatch.setattr(runner, "available_cpus", lambda: 3)
    photos, rec = inputs
    res = segment(photos / "a", tmp_path / "out", rec, code=0)
    assert res.output.splitlines()[0].endswith("; 3 workers.")
    res = segment(photos / "a", tmp_path / "out2", rec, "-w", "5", code=0)
    assert res.output.splitlines()[0].endswith("; 5 workers.")


def test_log_lines_print_above_a_progress_bar(monkeypatch):
    import io
    import sys

    from tqdm import tqdm

    from clothseg_tools.cli._common import configure_logging

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    restore = configure_logging(1)
    try:
        bar = tqdm(total=2, file=sys.stderr, ascii=True)
        bar.update(1)
        logging.getLogger("clothseg_tools").info("segment a: done in 0.100 s")
        bar.close()
    finally:
        restore()
    text = err.getvalue()
    # the bar is cleared, the line written whole, then the bar drawn again below it
    line = "INFO clothseg_tools: segment a: done in 0.100 s\n"
    before, after = text.split(line)
    assert before.endswith("\r") and "1/2" in after
