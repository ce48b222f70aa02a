"""SegmentationResult: the saved folder layout, checksums, and in-process engine runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.api import Task
from clothseg_tools.classes import CLASS_TYPES
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.errors import (
    ImageTooLargeError,
    InvalidRequestError,
    MaskDecodeError,
    ShapeMismatchError,
    UnsupportedFormatError,
)
from clothseg_tools.result import RESULT_NAME, SegmentationResult, segment_with_engine


def mask(h: int = 5, w: int = 7, value: int = 255, row: int = 1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[row : row + 2, 1:5] = value
    return m


def sample(**kwargs: Any) -> SegmentationResult:
    defaults: dict[str, Any] = {
        "masks": MaskSet({"tops": mask(), "acc": mask(value=90, row=3)}),
        "parts": MaskSet({"tops_0": mask(), "tops_1": mask(row=2)}),
        "task": Task.from_data(
            {
                "task_id": "t-1",
                "state": "1",
                "progress": "100",
                "created_at": "1700000000",
                "class_masks": {"tops": "https://cdn.test/t.png?Signature=SECRET"},
                "clothes_masks": "https://cdn.test/p.zip?Signature=SECRET",
                "output_type": 3,
            }
        ),
        "source": "photos/a.jpg",
        "options": {"class_type": 1, "output_type": 3},
        "timings": {"total": 0.25},
        "notes": ("one person",),
        "engine": None,
    }
    defaults.update(kwargs)
    return SegmentationResult(**defaults)


def test_folder_layout(tmp_path: Path) -> None:
    folder = sample().save(tmp_path / "out")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        "acc.png",
        "masks.json",
        "parts/masks.json",
        "parts/tops_0.png",
        "parts/tops_1.png",
        "result.json",
        "tops.png",
    ]
    meta = json.loads((folder / RESULT_NAME).read_text())
    assert meta["format"] == "clothseg-result" and meta["version"] == 1
    assert meta["image_size"] == [7, 5]  # [W, H]
    assert meta["classes"] == ["tops", "acc"] and meta["parts"] == ["tops_0", "tops_1"]
    assert meta["options"] == {"class_type": 1, "output_type": 3}
    assert meta["notes"] == ["one person"] and meta["timings"] == {"total": 0.25}
    assert meta["task"]["task_id"] == "t-1" and meta["task"]["state"] == 1
    assert set(meta["checksums"]) == set(files) - {"result.json"}


def test_result_json_holds_no_signed_links(tmp_path: Path) -> None:
    folder = sample().save(tmp_path)
    text = (folder / RESULT_NAME).read_text()
    assert "SECRET" not in text and "https://cdn.test/t.png" in text


def test_round_trip(tmp_path: Path) -> None:
    original = sample()
    loaded = SegmentationResult.load(original.save(tmp_path))
    assert loaded.masks == original.masks and loaded.parts == original.parts
    assert loaded.source == original.source and loaded.options == original.options
    assert loaded.notes == original.notes and loaded.timings == original.timings
    assert loaded.task is not None and original.task is not None
    assert loaded.task.task_id == "t-1" and loaded.task.created_at == original.task.created_at


def test_without_parts_there_is_no_parts_folder(tmp_path: Path) -> None:
    folder = sample(parts=None, task=None, engine="replay").save(tmp_path)
    assert not (folder / "parts").exists()
    loaded = SegmentationResult.load(folder)
    assert loaded.parts is not None
    assert len(loaded.parts) == 0 and loaded.parts.shape == (5, 7)
    assert loaded.task is None and loaded.engine == "replay"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stack=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    ),
    n_parts=st.integers(0, 3),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, stack: np.ndarray, n_parts: int
) -> None:
    classes = list(CLASS_TYPES[4][: stack.shape[0]])
    masks = MaskSet.from_stack(stack.copy(), classes)
    parts = {f"tops_{i}": stack[0] // (i + 1) for i in range(n_parts)}
    result = SegmentationResult(masks, parts=MaskSet(parts, shape=masks.shape))
    folder = tmp_path_factory.mktemp("r")
    loaded = SegmentationResult.load(result.save(folder))
    assert loaded.masks == masks
    assert loaded.parts == result.parts


def test_saving_again_replaces_the_result(tmp_path: Path) -> None:
    sample().save(tmp_path)
    smaller = sample(masks=MaskSet({"dress": mask()}), parts=None)
    loaded = SegmentationResult.load(smaller.save(tmp_path))
    assert loaded.masks.classes == ("dress",) and len(loaded.parts or ()) == 0


def test_interrupted_save_leaves_no_result_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample().save(tmp_path)
    real_save = MaskSet.save

    def crash_on_parts(self: MaskSet, folder: Any) -> Path:
        if Path(folder).name == "parts":
            raise OSError("disk full")
        return real_save(self, folder)

    monkeypatch.setattr(MaskSet, "save", crash_on_parts)
    with pytest.raises(OSError, match="disk full"):
        sample().save(tmp_path)
    # the old result.json went first, so the half-written folder is not trusted
    assert not (tmp_path / RESULT_NAME).exists()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        SegmentationResult.load(tmp_path)


def test_tampered_file_fails_the_checksum(tmp_path: Path) -> None:
    folder = sample().save(tmp_path)
    (folder / "parts" / "tops_1.png").write_bytes(encode_png(mask(value=7)))
    with pytest.raises(MaskDecodeError, match="checksum"):
        SegmentationResult.load(folder)
    assert SegmentationResult.load(folder, verify=False).parts is not None


def test_missing_file_fails_the_checksum(tmp_path: Path) -> None:
    folder = sample().save(tmp_path)
    (folder / "acc.png").unlink()
    with pytest.raises(MaskDecodeError, match=r"acc\.png is missing"):
        SegmentationResult.load(folder)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not a valid result"),
        ('{"format": "something-else", "version": 1}', "format"),
        ('{"format": "clothseg-result", "version": 99}', "newer"),
        ("[]", "not a valid result"),
    ],
)
def test_invalid_result_json(tmp_path: Path, content: str, match: str) -> None:
    folder = sample().save(tmp_path)
    (folder / RESULT_NAME).write_text(content)
    with pytest.raises(MaskDecodeError, match=match):
        SegmentationResult.load(folder)


def test_parts_of_another_shape_are_refused() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(3, 3\).*\(5, 7\)"):
        sample(parts=MaskSet({"tops_0": np.zeros((3, 3), np.uint8)}))


# -- in-process engines ------------------------------------------------------------------------


class Bands(Engine):
    """Horizontal bands, one per class, and two garment parts; records its calls."""

    name = "bands"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _segment(
        self,
        image: np.ndarray,
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        self.calls.append(
            {
                "classes": classes,
                "detail_mode": detail_mode,
                "quality": quality,
                "image_bytes": image_bytes,
                "image": image,
            }
        )
        h, w = image.shape[:2]
        stack = np.zeros((len(classes), h, w), np.uint8)
        for i in range(len(classes)):
            stack[i, i % h] = 255
        parts = {"tops_0": stack[0].copy(), "dress_0": np.full((h, w), 9, np.uint8)}
        return EngineOutput(MaskSet.from_stack(stack, classes), parts, ("banded",))


def rgb(h: int = 6, w: int = 9) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 20
    return img


@pytest.mark.parametrize("class_type", [1, 2, 3, 4])
@pytest.mark.parametrize(
    ("output_type", "has_masks", "has_parts"), [(1, True, False), (2, False, True), (3, True, True)]
)
def test_segment_with_engine_follows_the_service_options(
    class_type: int, output_type: int, has_masks: bool, has_parts: bool
) -> None:
    engine = Bands()
    result = segment_with_engine(
        engine, rgb(), class_type=class_type, output_type=output_type, detail_mode=2, quality=2
    )
    call = engine.calls[0]
    assert call["classes"] == CLASS_TYPES[class_type]
    assert (call["detail_mode"], call["quality"]) == (2, 2)
    assert result.shape == (6, 9)
    assert result.masks.classes == (CLASS_TYPES[class_type] if has_masks else ())
    assert result.parts is not None
    assert result.parts.classes == (("tops_0", "dress_0") if has_parts else ())
    assert result.engine == "bands" and result.task is None and result.notes == ("banded",)
    assert result.options == {
        "class_type": class_type,
        "output_type": output_type,
        "detail_mode": 2,
        "quality": 2,
    }
    assert set(result.timings) == {"decode", "segment", "total"}


def test_segment_with_engine_sees_the_file_bytes(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "shot.png"
    Image.fromarray(rgb()).save(path)
    engine = Bands()
    result = segment_with_engine(engine, path)
    assert engine.calls[0]["image_bytes"] == path.read_bytes()  # replay keys on these
    np.testing.assert_array_equal(engine.calls[0]["image"], rgb())
    assert result.source == str(path)
    assert segment_with_engine(engine, path, source="custom").source == "custom"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"class_type": 0}, "class_type"),
        ({"output_type": 4}, "output_type"),
        ({"detail_mode": "x"}, "detail_mode"),
        ({"quality": True}, "quality"),
    ],
)
def test_segment_with_engine_checks_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        segment_with_engine(Bands(), rgb(), **options)


def test_segment_with_engine_applies_the_service_limits() -> None:
    with pytest.raises(ImageTooLargeError):
        segment_with_engine(Bands(), np.zeros((4097, 2, 3), np.uint8))
    with pytest.raises(UnsupportedFormatError):
        segment_with_engine(Bands(), b"GIF89a" + bytes(30))


def test_engine_result_saves_and_loads(tmp_path: Path) -> None:
    result = segment_with_engine(Bands(), rgb(), output_type=3)
    loaded = SegmentationResult.load(result.save(tmp_path))
    assert loaded.masks == result.masks and loaded.parts == result.parts
    assert loaded.engine == "bands"
