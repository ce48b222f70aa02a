"""``clothseg tryon`` over result folders, keypoints in results, and the offline chain
photo -> local engine -> ootd mask."""

import json
from pathlib import Path

import numpy as np
import pytest
from _ootd_support import (
    BAG,
    BELT,
    DRESS,
    FACE,
    GLASSES,
    HAIR,
    HAT,
    LARM,
    LLEG,
    LSHOE,
    NECK,
    PANTS,
    RARM,
    RLEG,
    RSHOE,
    SCARF,
    SKIRT,
    UPPER,
    Outfit,
    figure,
)
from click.testing import CliRunner
from PIL import Image

from clothseg_tools import MaskSet, SegmentationResult, tryon_mask
from clothseg_tools.batch.manifest import read_manifest
from clothseg_tools.cli import main
from clothseg_tools.tryon._ootd_sources import BODY_18

SERVICE_CLASSES = {
    "hair": [HAIR],
    "face": [FACE],
    "head": [FACE, HAIR, HAT],
    "tops": [UPPER],
    "bottoms": [PANTS, SKIRT],
    "dress": [DRESS],
    "bag": [BAG],
    "shoes": [LSHOE, RSHOE],
    "acc": [GLASSES, BELT, SCARF],
    "body": [LARM, RARM, LLEG, RLEG, NECK],
}


def run(*args, code=None):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result


def saved_result(folder: Path, outfit: Outfit, *, keypoints=True) -> SegmentationResult:
    lab, pose, _ = figure(outfit)
    masks = MaskSet({name: np.isin(lab, ids) for name, ids in SERVICE_CLASSES.items()})
    named = {BODY_18[i]: p for i, p in pose.items()} if keypoints else None
    res = SegmentationResult(masks, source=f"{folder.name}.png", engine="local", keypoints=named)
    res.save(folder)
    return res


def test_keypoints_round_trip_through_the_result_folder(tmp_path):
    saved = saved_result(tmp_path / "a", Outfit())
    meta = json.loads((tmp_path / "a" / "result.json").read_text())
    assert meta["keypoints"]["left_wrist"] == list(saved.keypoints["left_wrist"])
    loaded = SegmentationResult.load(tmp_path / "a")
    assert loaded.keypoints == saved.keypoints
    saved_result(tmp_path / "b", Outfit(), keypoints=False)
    assert SegmentationResult.load(tmp_path / "b").keypoints is None


def test_damaged_keypoints_in_result_json_are_a_decode_error(tmp_path):
    from clothseg_tools.errors import MaskDecodeError

    saved_result(tmp_path / "a", Outfit())
    path = tmp_path / "a" / "result.json"
    meta = json.loads(path.read_text())
    meta["keypoints"] = {"nose": [1, 2, 3, 4]}
    path.write_text(json.dumps(meta))
    with pytest.raises(MaskDecodeError, match="not a valid result"):
        SegmentationResult.load(tmp_path / "a")


def test_tryon_writes_the_ootd_mask_of_every_folder_and_resumes(tmp_path):
    results = tmp_path / "results"
    saved = {
        "long": saved_result(results / "long", Outfit("long", "pants")),
        "skirt": saved_result(results / "skirt", Outfit("none", "skirt", bag=True)),
    }
    out = run("tryon", results, "--category", "upper_body", "--preset", "ootd", code=0)
    assert "manifest" in out.output
    for key, res in saved.items():
        png = results / key / "tryon_upper_body_ootd_hd.png"
        got = np.asarray(Image.open(png))
        want = tryon_mask(res.masks, "upper_body", keypoints=res.keypoints, preset="ootd")
        assert got.dtype == np.uint8 and set(np.unique(got)) <= {0, 255}
        assert ((got == 255) == want).all()
    manifest = read_manifest(results / "manifest-tryon-upper_body_ootd_hd.jsonl")
    assert len(manifest) == 2 and {r["status"] for r in manifest.values()} == {"done"}
    assert all(r["options"]["model_type"] == "hd" for r in manifest.values())
    again = run("tryon", results, "--category", "upper_body", "--preset", "ootd", code=0)
    assert "skipped" in again.output.lower()
    # another model type is another file with its own manifest
    run("tryon", results, "-c", "upper_body", "--preset", "ootd", "--model-type", "dc", code=0)
    dc = np.asarray(Image.open(results / "long" / "tryon_upper_body_ootd_dc.png")) == 255
    hd = np.asarray(Image.open(results / "long" / "tryon_upper_body_ootd_hd.png")) == 255
    assert dc.sum() < hd.sum()


def test_tryon_ootd_reads_the_parsing_map_of_a_result_that_has_one(tmp_path):
    from clothseg_tools import Parsing

    lab, pose, kp = figure(Outfit("short", "skirt", hat=True))
    parsing = Parsing(lab, "ootd")
    named = {BODY_18[i]: p for i, p in pose.items()}
    SegmentationResult(parsing.to_maskset(), parsing=parsing, keypoints=named).save(
        tmp_path / "r" / "one"
    )
    run("tryon", tmp_path / "r", "--category", "dresses", "--preset", "ootd", code=0)
    got = np.asarray(Image.open(tmp_path / "r" / "one" / "tryon_dresses_ootd_hd.png")) == 255
    assert (got == tryon_mask(parsing, "dresses", keypoints=kp, preset="ootd")).all()
    # the neck label only the parsing has is painted
    assert got[lab == NECK].mean() > 0.5


def test_tryon_default_preset_and_out_folder(tmp_path):
    results, out = tmp_path / "results", tmp_path / "masks"
    res = saved_result(results / "one", Outfit("short", "pants"))
    run("tryon", results, "--category", "lower_body", "--out", out, code=0)
    got = np.asarray(Image.open(out / "one" / "tryon_lower_body.png")) == 255
    assert (got == tryon_mask(res.masks, "lower_body", keypoints=res.keypoints)).all()
    assert not (results / "one" / "tryon_lower_body.png").exists()


def test_tryon_without_keypoints_fails_that_item_and_says_why(tmp_path):
    results = tmp_path / "results"
    saved_result(results / "good", Outfit())
    saved_result(results / "nopose", Outfit(), keypoints=False)
    out = run("tryon", results, "--category", "dresses", "--preset", "ootd", code=1)
    assert "KeypointError" in out.output and "--engine local" in out.output
    assert (results / "good" / "tryon_dresses_ootd_hd.png").is_file()
    assert not (results / "nopose" / "tryon_dresses_ootd_hd.png").exists()
    # lower_body needs no keypoints
    run("tryon", results, "--category", "lower_body", "--preset", "ootd", code=0)


def test_tryon_usage_errors(tmp_path):
    run("tryon", tmp_path, "--category", "upper_body", code=2)  # no result folders
    run("tryon", tmp_path, "--category", "hats", code=2)
    run("tryon", tmp_path, "--category", "upper_body", "--preset", "viton", code=2)


@pytest.mark.slow
def test_photo_to_local_engine_to_ootd_mask_offline(tmp_path):
    pytest.importorskip("mediapipe")
    import skimage.data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photos / "astronaut.png")
    results = tmp_path / "results"
    run("segment", photos, "--engine", "local", "--class-type", "4", "--out", results, code=0)
    folder = next(p.parent for p in results.rglob("result.json"))
    res = SegmentationResult.load(folder)
    kp = res.keypoints
    assert kp is not None and {"left_shoulder", "right_shoulder", "nose"} <= set(kp)
    x, y = kp["nose"]
    assert res.masks["face"][round(y), round(x)] >= 128  # the nose is on the face
    assert kp["left_shoulder"][0] > kp["right_shoulder"][0]  # the person's left: picture right
    run("tryon", results, "--category", "upper_body", "--preset", "ootd", code=0)
    mask = np.asarray(Image.open(folder / "tryon_upper_body_ootd_hd.png")) == 255
    tops = res.masks["tops"] >= 128
    assert mask[tops].mean() > 0.9  # the space suit is painted
    assert mask[res.masks["face"] >= 128].mean() < 0.05  # the face is kept


@pytest.mark.slow
def test_detect_pose_finds_keypoints_for_results_without_them(tmp_path):
    pytest.importorskip("mediapipe")
    import skimage.data

    photo = skimage.data.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    tops = np.zeros(photo.shape[:2], bool)
    tops[300:, 60:440] = True  # the suit, roughly
    face = np.zeros_like(tops)
    face[60:200, 180:300] = True
    results = tmp_path / "results"
    SegmentationResult(
        MaskSet({"tops": tops, "face": face}), source=str(tmp_path / "astronaut.png")
    ).save(results / "astronaut")
    args = ("tryon", results, "--category", "upper_body", "--preset", "ootd")
    refused = run(*args, code=1)
    assert "--detect-pose" in refused.output
    run(*args, "--detect-pose", "--retry-failed", code=0)
    mask = np.asarray(Image.open(results / "astronaut" / "tryon_upper_body_ootd_hd.png")) == 255
    assert mask[tops].mean() > 0.9 and mask[face].mean() < 0.05


def test_photo_to_onnx_engine_to_ootd_mask_offline(tmp_path):
    pytest.importorskip("onnxruntime")
    from _onnx_support import colour_parser, export_folder

    # the colour parser reads red as Upper-clothes, green as Pants, blue as Face (ATR)
    model = export_folder(
        tmp_path / "seg_onnx", colour_parser(), size={"height": 512, "width": 384}
    )
    lab, _, _ = figure(Outfit("long", "pants"))
    photo = np.zeros((*lab.shape, 3), np.uint8)
    photo[lab == UPPER] = (255, 0, 0)
    photo[lab == PANTS] = (0, 255, 0)
    photo[lab == FACE] = (0, 0, 255)
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo).save(tmp_path / "photos" / "figure.png")
    results = tmp_path / "results"
    run("segment", tmp_path / "photos", "--engine", "onnx", "--model", model,
        "--class-type", 4, "--out", results, code=0)  # fmt: skip
    res = SegmentationResult.load(results / "figure")
    assert res.parsing is not None and res.parsing.labelset.name == "atr"
    run("tryon", results, "--category", "lower_body", "--preset", "ootd", code=0)
    got = np.asarray(Image.open(results / "figure" / "tryon_lower_body_ootd_hd.png")) == 255
    assert (got == tryon_mask(res.parsing, "lower_body", preset="ootd")).all()
    assert got[lab == PANTS].mean() > 0.99 and got[lab == UPPER].mean() < 0.01
