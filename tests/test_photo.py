"""The photo travels one way: checked once, opened once, and arrays are never re-encoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clothseg_tools import MaskSet, inputs
from clothseg_tools._io import encode_png
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.engines.replay import ReplayEngine, record
from clothseg_tools.errors import ImageTooLargeError, InputError
from clothseg_tools.inputs import decode_input_image, open_photo
from clothseg_tools.result import SegmentationResult, segment_with_engine


class Seen(Engine):
    """Keeps what it was given; masks the top half of the image."""

    name = "seen"

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, bytes | None]] = []

    def _segment(self, image: Any, *, classes: Any, image_bytes: Any, **_: Any) -> EngineOutput:
        self.calls.append((image, image_bytes))
        m = np.zeros(image.shape[:2], np.uint8)
        m[: len(m) // 2] = 255
        return EngineOutput(MaskSet({c: m for c in classes}), {})


@pytest.fixture
def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every header opened by the input checks (inputs.open_image)."""
    opened: list[str] = []
    real = inputs.open_image

    def counting(source: Any, what: str, **kwargs: Any) -> Any:
        opened.append(what)
        return real(source, what, **kwargs)

    monkeypatch.setattr(inputs, "open_image", counting)
    return opened


@pytest.fixture
def no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> bytes:
        raise AssertionError("an in-memory array was encoded")

    monkeypatch.setattr(inputs, "encode_png", refuse)


@settings(max_examples=40, deadline=None)
@given(
    arr=hnp.arrays(
        np.uint8,
        st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
            st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([3, 4])),
        ),
    )
)
def test_an_array_gives_what_its_png_would(arr: np.ndarray) -> None:
    photo = open_photo(arr, need_bytes=False)
    assert photo.data is None and photo.filename == "image.png"
    np.testing.assert_array_equal(photo.pixels, decode_input_image(encode_png(arr)))


def test_an_array_is_not_encoded_for_a_local_engine(no_png: None) -> None:
    engine = Seen()
    arr = np.full((4, 6, 3), 90, np.uint8)
    res = segment_with_engine(engine, arr, class_type=3)
    ((image, data),) = engine.calls
    assert data is None and np.shares_memory(image, arr) and not image.flags.writeable
    assert res.shape == (4, 6) and arr.flags.writeable  # the caller's array is untouched


def test_an_array_is_encoded_for_an_engine_keyed_on_bytes(tmp_path: Path) -> None:
    arr = np.zeros((4, 6, 3), np.uint8)
    top = np.zeros((4, 6), np.uint8)
    top[:2] = 255
    record(tmp_path, encode_png(arr), {"tops": top})
    res = segment_with_engine(ReplayEngine(tmp_path), arr, class_type=1)
    np.testing.assert_array_equal(res.masks["tops"], top)


def test_a_file_is_checked_and_opened_once(tmp_path: Path, count_opens: list[str]) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(encode_png(np.full((5, 4, 3), 7, np.uint8)))
    engine = Seen()
    res = segment_with_engine(engine, path)
    assert count_opens == ["p.png"]
    ((_, data),) = engine.calls
    assert data == path.read_bytes() and res.source == str(path)


def test_post_processing_opens_the_photo_once(tmp_path: Path, count_opens: list[str]) -> None:
    from clothseg_tools.batch.post import load_photo

    path = tmp_path / "p.png"
    path.write_bytes(encode_png(np.full((5, 4, 3), 7, np.uint8)))
    result = SegmentationResult(MaskSet({"tops": np.zeros((5, 4), bool)}), source=str(path))
    assert load_photo(result).shape == (5, 4, 3)
    assert count_opens == ["p.png"]


def test_arrays_are_held_to_the_limits(no_png: None) -> None:
    with pytest.raises(ImageTooLargeError, match="4097"):
        open_photo(np.broadcast_to(np.uint8(0), (1, 4097, 3)), need_bytes=False)
    with pytest.raises(InputError, match="uint8"):
        open_photo(np.zeros((2, 2, 3), np.float32), need_bytes=False)
    with pytest.raises(InputError, match="shape"):
        open_photo(np.zeros((2, 2, 2), np.uint8), need_bytes=False)
