"""``clothseg import``: folders of parsing maps into result folders every command reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import clothseg_tools as cst
from clothseg_tools.batch.importing import (
    ImportItem,
    PhotoIndex,
    import_batch,
    read_parsing_dir,
    register_reader,
)
from clothseg_tools.batch.manifest import manifest_path, read_manifest
from clothseg_tools.cli import main
from clothseg_tools.errors import ConfigurationError
from clothseg_tools.result import PARSING_NAME, SegmentationResult

# LIP: 13 Face, 2 Hair, 5 Upper-clothes, 9 Pants, 14 Left-arm, 18 Left-shoe
EXPECTED = {"face": 13, "hair": 2, "tops": 5, "bottoms": 9, "body": 14, "shoes": 18}


def lip_map(h: int = 40, w: int = 30, *, shift: int = 0) -> np.ndarray:
    labels = np.zeros((h, w), np.uint8)
    labels[0:5] = 2
    labels[5:10, 5 + shift : 25] = 13
    labels[10:25, 5:25] = 5
    labels[10:25, 25:] = 14
    labels[25:36, 5:25] = 9
    labels[36:, 5:15] = 18
    return labels


def write_map(path: Path, labels: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "palette":
        cst.Parsing(labels, "lip").save(path)
    elif mode == "grey":
        Image.fromarray(labels, mode="L").save(path)
    else:  # 16-bit grey
        Image.fromarray(labels.astype(np.uint16)).save(path)


@pytest.fixture()
def dataset(tmp_path):
    """SCHP-style output: maps in a nested folder, photos named alike elsewhere."""
    maps, photos = tmp_path / "parsing", tmp_path / "images"
    write_map(maps / "men" / "a.png", lip_map(), "palette")
    write_map(maps / "women" / "b.png", lip_map(shift=2), "grey")
    write_map(maps / "c.png", lip_map(shift=4), "grey16")
    (photos / "men").mkdir(parents=True)
    (photos / "elsewhere").mkdir()
    rgb = np.full((40, 30, 3), 120, np.uint8)
    Image.fromarray(rgb).save(photos / "men" / "a.jpg")  # same relative path
    Image.fromarray(rgb).save(photos / "elsewhere" / "b.png")  # same stem only
    return maps, photos


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_import_writes_result_folders_with_classes_parsing_and_photos(dataset, tmp_path):
    maps, photos = dataset
    out = tmp_path / "results"
    res = run("import", maps, "--labels", "lip", "--images", photos, "--out", out, "-q")
    assert res.exit_code == 0, res.output
    for name, shift in [("men/a", 0), ("women/b", 2), ("c", 4)]:
        result = SegmentationResult.load(out / name)
        labels = lip_map(shift=shift)
        assert result.masks.classes == cst.CLASSES and result.engine == "import"
        for cls, value in EXPECTED.items():
            np.testing.assert_array_equal(result.masks[cls] > 0, labels == value, err_msg=cls)
        np.testing.assert_array_equal(result.masks["head"] > 0, np.isin(labels, [2, 13]))
        np.testing.assert_array_equal(result.masks["clothes"] > 0, np.isin(labels, [5, 9]))
        assert result.parsing is not None and result.parsing.labelset.name == "lip"
        np.testing.assert_array_equal(result.parsing.labels, labels)
        assert (out / name / PARSING_NAME).is_file()
    first = SegmentationResult.load(out / "men/a")
    assert first.source == str((photos / "men" / "a.jpg").resolve())
    assert SegmentationResult.load(out / "women/b").source == str(
        (photos / "elsewhere" / "b.png").resolve()
    )
    no_photo = SegmentationResult.load(out / "c")
    assert no_photo.source is None and "no photo found" in no_photo.notes[0]
    records = read_manifest(manifest_path(out, "import"))
    assert {r["status"] for r in records.values()} == {"done"} and len(records) == 3


def test_rerun_resumes_and_overwrite_redoes(dataset, tmp_path):
    maps, _ = dataset
    out = tmp_path / "results"
    assert run("import", maps, "--labels", "lip", "--out", out, "-q").exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert run("import", maps, "--labels", "lip", "--out", out, "-q").exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    write_map(maps / "c.png", lip_map(shift=6), "grey")  # a changed map is redone
    assert run("import", maps, "--labels", "lip", "--out", out, "-q").exit_code == 0
    np.testing.assert_array_equal(
        SegmentationResult.load(out / "c").parsing.labels, lip_map(shift=6)
    )
    assert (out / "men/a/parsing.png").stat().st_mtime_ns == stamps[out / "men/a/parsing.png"]
    assert run("import", maps, "--labels", "lip", "--out", out, "--overwrite", "-q").exit_code == 0
    assert (out / "men/a/parsing.png").stat().st_mtime_ns != stamps[out / "men/a/parsing.png"]


def test_a_bad_map_fails_alone_with_the_value_and_the_set(dataset, tmp_path):
    maps, photos = dataset
    write_map(maps / "d.png", np.full((40, 30), 25, np.uint8), "grey")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(photos / "men" / "e.jpg")
    write_map(maps / "men" / "e.png", lip_map(), "grey")  # its photo is 10 x 10
    out = tmp_path / "results"
    res = run("import", maps, "--labels", "lip", "--images", photos, "--out", out)
    assert res.exit_code == 1
    records = read_manifest(manifest_path(out, "import"))
    failed = {
        Path(src).name: rec["error"] for src, rec in records.items() if rec["status"] == "failed"
    }
    assert failed["d.png"]["type"] == "LabelSetError"
    assert "value 25, outside label set 'lip' of 20 labels" in failed["d.png"]["message"]
    assert failed["e.png"]["type"] == "ShapeMismatchError"
    assert "30 x 40 pixels but its photo" in failed["e.png"]["message"]
    assert sum(r["status"] == "done" for r in records.values()) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Parsing maps need their label set: pass --labels"),
        (["--labels", "lipp"], "Unknown label set 'lipp'"),
        (["--labels", "lip", "--format", "xml"], "'xml' is not a format import reads"),
    ],
)
def test_usage_errors(dataset, tmp_path, args, message):
    maps, _ = dataset
    res = run("import", maps, "--out", tmp_path / "r", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_other_commands_read_imported_results(dataset, tmp_path):
    maps, photos = dataset
    out = tmp_path / "results"
    res = run("import", maps, "--labels", "lip", "--images", photos, "--out", out, "-q")
    assert res.exit_code == 0
    assert run("stats", out, "-q").exit_code == 0
    stats = json.loads(next(out.glob("*.json")).read_text()) if list(out.glob("*.json")) else None
    assert stats is not None
    coco = run("coco", out)
    assert coco.exit_code == 0, coco.output
    cutout = run("cutout", out, "-q")
    # the two results with a photo are cut out; the one without fails and says why
    assert cutout.exit_code == 1
    assert len(list(out.rglob("cutout*.png"))) == 2


def test_photo_index_matches_by_path_then_unique_stem(tmp_path):
    for rel in ("a/x.jpg", "b/x.png", "c/y.webp", "z.jpeg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    index = PhotoIndex(tmp_path)
    assert index.find("a/x") == tmp_path / "a/x.jpg"
    assert index.find("q/x") is None  # two photos called x: neither is trusted
    assert index.find("deep/y") == tmp_path / "c/y.webp"
    assert index.find("z") == tmp_path / "z.jpeg"
    with pytest.raises(ConfigurationError, match="does not exist"):
        PhotoIndex(tmp_path / "missing")


def test_a_registered_reader_plugs_in(tmp_path):
    def squares(source, *, labels=None, images=None):
        for i in range(2):
            mask = np.zeros((8, 8), np.uint8)
            mask[: 4 + i] = 255
            yield ImportItem(f"sq{i}", f"{source}#{i}", lambda m=mask: cst.MaskSet({"tops": m}))

    register_reader("test-squares", squares)
    summary = import_batch(tmp_path / "anything", tmp_path / "out", fmt="test-squares")
    assert summary.done == 2
    result = SegmentationResult.load(tmp_path / "out" / "sq1")
    assert int(result.masks["tops"].sum() // 255) == 40 and result.parsing is None


def test_two_maps_for_one_folder_are_refused(tmp_path):
    write_map(tmp_path / "m" / "a.png", lip_map(), "grey")
    Image.fromarray(lip_map()).save(tmp_path / "m" / "a.bmp")
    with pytest.raises(ConfigurationError, match=r"a\.bmp and .*a\.png would both become"):
        import_batch(tmp_path / "m", tmp_path / "out", labels="lip")


def test_reader_needs_a_folder(tmp_path):
    with pytest.raises(ConfigurationError, match="is not a folder of parsing maps"):
        list(read_parsing_dir(tmp_path / "nope", labels="lip"))
