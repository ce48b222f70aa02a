"""The result folder has one owner: result.py writes, reads, verifies and finds it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from clothseg_tools import MaskSet, export_coco
from clothseg_tools.batch import discover_results
from clothseg_tools.result import (
    LAYOUT,
    PARTS_DIR,
    RESULT_NAME,
    SegmentationResult,
    find_results,
    is_result_folder,
)


def masks(seed: int = 0) -> MaskSet:
    rng = np.random.default_rng(seed)
    return MaskSet(
        {"tops": rng.integers(0, 256, (6, 5), dtype=np.uint8), "acc": np.eye(6, 5, dtype=bool)}
    )


def on_disk(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_save_returns_every_file_it_wrote_with_its_checksum(tmp_path: Path) -> None:
    ms = masks()
    parts = MaskSet({"tops_0": ms["tops"]})
    saved = SegmentationResult(ms, parts=parts, source="a.jpg").save(tmp_path / "r")
    assert saved == tmp_path / "r" and saved.is_dir()  # still a Path
    assert dict(saved.files) == on_disk(tmp_path / "r")
    assert set(saved.files) == {
        "tops.png",
        "acc.png",
        "masks.json",
        f"{PARTS_DIR}/tops_0.png",
        f"{PARTS_DIR}/masks.json",
        RESULT_NAME,
    }
    recorded = json.loads((saved / RESULT_NAME).read_text())["checksums"]
    assert recorded == {k: v for k, v in saved.files.items() if k != RESULT_NAME}
    assert not getattr(saved / "x", "files", {})  # derived paths carry no files


def test_save_leaves_no_marker_and_clears_temporary_files(tmp_path: Path) -> None:
    (tmp_path / PARTS_DIR).mkdir()
    (tmp_path / ".tops.png.abc.tmp").write_bytes(b"half")
    (tmp_path / PARTS_DIR / ".x.tmp").write_bytes(b"half")
    SegmentationResult(masks()).save(tmp_path)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert not (tmp_path / LAYOUT["saving"]).exists()


def test_a_maskset_folder_is_a_result_folder(tmp_path: Path) -> None:
    ms = masks(1)
    ms.save(tmp_path / "plain")
    MaskSet({"tops_0": ms["tops"]}).save(tmp_path / "plain" / PARTS_DIR)
    assert is_result_folder(tmp_path / "plain")
    loaded = SegmentationResult.load(tmp_path / "plain")
    assert loaded.masks == ms and loaded.parts.classes == ("tops_0",)
    assert loaded.source is None and loaded.task is None and loaded.options == {}


def test_an_interrupted_save_is_not_a_result_folder(tmp_path: Path) -> None:
    masks().save(tmp_path)
    (tmp_path / LAYOUT["saving"]).touch()
    assert not is_result_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="did not finish"):
        SegmentationResult.load(tmp_path)


def test_find_results_at_any_depth(tmp_path: Path) -> None:
    ms = masks()
    SegmentationResult(ms, parts=MaskSet({"tops_0": ms["tops"]})).save(tmp_path / "a" / "b")
    ms.save(tmp_path / "plain")
    SegmentationResult(ms).save(tmp_path / "x" / "parts")  # a photo folder named parts
    SegmentationResult(ms).save(tmp_path / ".cache" / "hidden")
    ms.save(tmp_path / "busy")
    (tmp_path / "busy" / LAYOUT["saving"]).touch()
    found = [p.relative_to(tmp_path).as_posix() for p in find_results(tmp_path)]
    assert found == ["a/b", "plain", "x/parts"]
    assert [
        p.relative_to(tmp_path).as_posix() for p in find_results(tmp_path, exclude=[tmp_path / "a"])
    ] == ["plain", "x/parts"]
    assert [i.key for i in discover_results(tmp_path)] == found
    with pytest.raises(FileNotFoundError):
        find_results(tmp_path / "missing")


def test_exports_accept_a_maskset_folder_named_by_its_folder(tmp_path: Path) -> None:
    ms = masks(2)
    ms.save(tmp_path / "r" / "shot-7")
    out = export_coco(tmp_path / "r", tmp_path / "coco.json")
    doc = json.loads(out.read_text())
    assert [img["file_name"] for img in doc["images"]] == ["shot-7"]
    assert {a["category_id"] for a in doc["annotations"]}


def test_recorded_image_size_must_match_the_masks(tmp_path: Path) -> None:
    folder = SegmentationResult(masks()).save(tmp_path)
    meta = json.loads((folder / RESULT_NAME).read_text())
    meta["image_size"] = [99, 6]
    (folder / RESULT_NAME).write_text(json.dumps(meta))
    from clothseg_tools.errors import ShapeMismatchError

    with pytest.raises(ShapeMismatchError, match=r"\[99, 6\].*5 x 6"):
        SegmentationResult.load(folder, verify=False)
