"""``--engine onnx --model PATH`` end to end: segment, serve, demo, and the saved parsing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _onnx_support import BLUE, GREEN, RED, colour_parser, export_folder, regions_photo
from _server_support import wait_until_serving
from click.testing import CliRunner
from onnx import numpy_helper
from PIL import Image

import clothseg_tools as cst
from clothseg_tools.cli import main
from clothseg_tools.errors import ShapeMismatchError
from clothseg_tools.labelsets import LabelSet
from clothseg_tools.result import PARSING_NAME, RESULT_NAME, SegmentationResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_folder(tmp_path_factory.mktemp("model") / "seg_onnx", colour_parser())


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    truth = {}
    for name, (h, w) in {"a": (64, 48), "sub/b": (128, 64)}.items():
        photo, labels = regions_photo(h, w, 8)
        Image.fromarray(photo).save(folder / f"{name}.png")
        truth[name] = labels
    return folder, truth


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_segment_with_an_exported_model_and_no_flags_about_labels(model, photos, tmp_path):
    folder, truth = photos
    out = tmp_path / "results"
    res = run("segment", folder, "--engine", "onnx", "--model", model, "--class-type", 4,
              "--out", out, "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.output
    for name, labels in truth.items():
        result = SegmentationResult.load(out / name)
        assert result.engine == "onnx" and result.masks.classes == cst.CLASSES
        np.testing.assert_array_equal(result.masks["tops"] >= 128, labels == RED)
        np.testing.assert_array_equal(result.masks["bottoms"] >= 128, labels == GREEN)
        np.testing.assert_array_equal(result.masks["head"] >= 128, labels == BLUE)
        # the fine parsing is kept beside the masks, with its label set
        assert result.parsing is not None and result.parsing.labelset is cst.LABELSETS["atr"]
        np.testing.assert_array_equal(result.parsing.labels, labels)
        meta = json.loads((out / name / RESULT_NAME).read_text())
        assert meta["parsing"]["file"] == PARSING_NAME
        assert meta["parsing"]["labelset"]["name"] == "atr"
        assert meta["parsing"]["labelset"]["labels"][4] == "Upper-clothes"
        assert PARSING_NAME in meta["checksums"]
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    manifest = (out / "manifest.jsonl").read_text()
    again = run("segment", folder, "--model", model, "--class-type", 4, "--out", out)
    assert again.exit_code == 0, again.output  # --model alone chooses the onnx engine
    assert "with the onnx engine" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == written  # resumed
    assert (out / "manifest.jsonl").read_text() == manifest


def swapped_model(folder: Path) -> Path:
    """The colour parser with red and green swapped: tops become bottoms."""
    proto = colour_parser()
    weights = {t.name: t for t in proto.graph.initializer}["W"]
    w = numpy_helper.to_array(weights).copy()
    w[[RED, GREEN]] = w[[GREEN, RED]]
    weights.CopyFrom(numpy_helper.from_array(w, "W"))
    return export_folder(folder, proto)


def test_another_model_redoes_the_items_and_the_same_model_elsewhere_resumes(
    model, photos, tmp_path
):
    folder, truth = photos
    out = tmp_path / "results"
    first = run("segment", folder, "--model", model, "--class-type", 4, "--out", out, "-q")
    assert first.exit_code == 0, first.output
    line = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert line["options"]["engine"]["model"].startswith("sha256:")

    # the same model copied to another path (another machine's mount) is the same model
    copy = tmp_path / "elsewhere" / "seg_onnx"
    shutil.copytree(model, copy)
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = run("segment", folder, "--model", copy, "--class-type", 4, "--out", out, "-q")
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == written

    # another model's masks replace the first's instead of being kept as done
    other = swapped_model(tmp_path / "other" / "seg_onnx")
    res = run("segment", folder, "--model", other, "--class-type", 4, "--out", out, "-q")
    assert res.exit_code == 0, res.output
    for name, labels in truth.items():
        result = SegmentationResult.load(out / name)
        np.testing.assert_array_equal(result.masks["bottoms"] >= 128, labels == RED)
        np.testing.assert_array_equal(result.masks["tops"] >= 128, labels == GREEN)


def test_damaged_parsing_file_is_caught_by_its_checksum(model, photos, tmp_path):
    folder, _ = photos
    out = tmp_path / "results"
    assert run("segment", folder / "a.png", "--model", model, "--out", out, "-q").exit_code == 0
    cst.Parsing(np.zeros((64, 48), np.uint8), "atr").save(out / "a" / PARSING_NAME)
    with pytest.raises(cst.MaskDecodeError, match=r"parsing\.png is missing or does not match"):
        SegmentationResult.load(out / "a")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--engine", "onnx"], 2, "--engine onnx needs --model PATH"),
        (["--engine", "replay", "--model", "m.onnx"], 2, "options of the onnx engine, not of"),
        (["--labels", "lip"], 2, "--labels names the label set of a --model"),
        (["--model", "nowhere/model.onnx"], 2, r"ModelError: Model nowhere/model.onnx does not"),
        (["--labels", "lipp", "--model", "MODEL"], 2, r"ModelError: labels='lipp'.*Unknown label"),
    ],
)
def test_usage_errors(model, photos, tmp_path, args, code, message):
    folder, _ = photos
    args = [model if a == "MODEL" else a for a in args]
    res = run("segment", folder, "--out", tmp_path / "r", *args)
    assert res.exit_code == code, res.output
    assert re.search(message, res.output), res.output
    assert "Traceback" not in res.output


def test_labels_that_do_not_fit_the_model(model, photos, tmp_path):
    folder, _ = photos
    res = run("segment", folder, "--model", model, "--labels", "lip", "--out", tmp_path / "r")
    assert res.exit_code == 2
    assert "label set 'lip' has 20 labels" in res.output and "(1, 20, h, w)" in res.output


def test_result_with_a_users_own_label_set_reads_back_anywhere(tmp_path):
    own = LabelSet("kiosk", ("bg", "shirt", "cape"), {"bg": (), "shirt": ("tops", "clothes"),
                                                      "cape": ("acc",)})  # fmt: skip
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    parsing = cst.Parsing(labels, own)
    result = SegmentationResult(parsing.to_maskset(), parsing=parsing, engine="onnx")
    result.save(tmp_path / "r")
    back = SegmentationResult.load(tmp_path / "r")
    assert back.parsing == parsing and back.parsing.labelset.classes["cape"] == ("acc",)
    with pytest.raises(ShapeMismatchError, match=r"parsing has shape \(2, 3\)"):
        SegmentationResult(cst.MaskSet({}, shape=(3, 3)), parsing=parsing)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_a_model_and_segment_through_the_client(model, tmp_path):
    photo, labels = regions_photo(128, 64, 8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    port = _free_port()
    command = [
        sys.executable, "-c", "from clothseg_tools.cli import main; main()", "serve",
        "--port", str(port), "--model", str(model), "--api-key", "k", "--workers", "2",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base)
        with cst.Client(api_key="k", base_url=base) as client:
            results = [client.segment(tmp_path / "p.png", class_type=4) for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert "engine onnx" in out.decode() + err.decode()
    for result in results:
        np.testing.assert_array_equal(result.masks["tops"] >= 128, labels == RED)
        np.testing.assert_array_equal(result.masks["clothes"] >= 128, np.isin(labels, [RED, GREEN]))


def test_serve_usage_error_without_a_model():
    res = run("serve", "--engine", "onnx", "--port", 1)
    assert res.exit_code == 2 and "--engine onnx needs --model PATH" in res.output


@pytest.mark.slow
def test_demo_with_the_onnx_engine(model, tmp_path):
    res = run("demo", "--engine", "onnx", "--model", model, "--out", tmp_path / "demo", "-q")
    assert res.exit_code == 0, res.output
    results = sorted((tmp_path / "demo" / "results").rglob(RESULT_NAME))
    assert results
    for path in results:
        meta = json.loads(path.read_text())
        assert meta["engine"] == "onnx" and meta["parsing"]["labelset"]["name"] == "atr"
    assert (tmp_path / "demo" / "results" / "report.html").is_file()
    assert os.path.getsize(tmp_path / "demo" / "results" / "report.html") > 0
