"""The replay engine: records keyed by the SHA-256 of the image bytes, as MaskSet folders
or label PNGs, served back exactly."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools._io import atomic_write_bytes, write_png
from clothseg_tools.classes import CLASS_TYPES, CLASSES
from clothseg_tools.engines import get_engine
from clothseg_tools.engines.replay import REPLAY_DIR_ENV, ReplayEngine, record, replay_key
from clothseg_tools.errors import (
    ConfigurationError,
    EngineError,
    NoRecordError,
    ShapeMismatchError,
)

IMAGE = np.zeros((6, 8, 3), np.uint8)
BYTES = b"the uploaded file"


def soft_masks(shape=(6, 8)) -> MaskSet:
    h, w = shape
    ramp = (np.arange(h * w, dtype=np.uint16).reshape(h, w) % 256).astype(np.uint8)
    return MaskSet({"tops": ramp, "hair": 255 - ramp, "dress": np.eye(h, w, dtype=bool)})


def test_replays_a_recorded_maskset(tmp_path: Path) -> None:
    masks = soft_masks()
    parts = {"tops_0": masks["dress"], "tops_1": masks["tops"]}
    folder = record(tmp_path, BYTES, masks, parts)
    assert folder == tmp_path / hashlib.sha256(BYTES).hexdigest()
    out = ReplayEngine(tmp_path).segment(IMAGE, classes=CLASS_TYPES[1], image_bytes=BYTES)
    assert out.masks.classes == CLASS_TYPES[1]  # requested order; unrequested hair dropped
    np.testing.assert_array_equal(out.masks["tops"], masks["tops"])  # soft values kept
    np.testing.assert_array_equal(out.masks["dress"], masks["dress"])
    assert not out.masks["acc"].any() and not out.masks["clothes"].any()  # not recorded
    assert sorted(out.parts) == ["tops_0", "tops_1"]
    np.testing.assert_array_equal(out.parts["tops_1"], masks["tops"])
    assert out.notes == ()


def test_no_record(tmp_path: Path) -> None:
    engine = ReplayEngine(tmp_path)
    with pytest.raises(NoRecordError, match=replay_key(b"other")) as info:
        engine.segment(IMAGE, classes=["tops"], image_bytes=b"other")
    assert "record" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(NoRecordError, match="image_bytes"):
        engine.segment(IMAGE, classes=["tops"])
    assert not engine.has_record(b"other")


def test_record_of_another_size_is_refused(tmp_path: Path) -> None:
    record(tmp_path, BYTES, soft_masks((4, 4)))
    with pytest.raises(EngineError, match=r"\(4, 4\).*\(6, 8\)"):
        ReplayEngine(tmp_path).segment(IMAGE, classes=["tops"], image_bytes=BYTES)


def label_png(tmp_path: Path, labels: np.ndarray, *, palette: bool = False) -> None:
    path = tmp_path / f"{replay_key(BYTES)}.png"
    if palette:
        img = Image.fromarray(labels).convert("P")  # indices stay the label values
        img.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(path, buf.getvalue())
    else:
        write_png(path, labels)


@pytest.mark.parametrize("palette", [False, True])
def test_replays_a_label_png(tmp_path: Path, palette: bool) -> None:
    labels = np.zeros((6, 8), np.uint8)
    labels[:2] = CLASSES.index("tops") + 1
    labels[4:, :3] = CLASSES.index("others") + 1
    label_png(tmp_path, labels, palette=palette)
    out = ReplayEngine(tmp_path).segment(IMAGE, classes=CLASSES, image_bytes=BYTES)
    assert out.masks.classes == CLASSES and out.parts == {}
    np.testing.assert_array_equal(out.masks["tops"], (labels == 5) * 255)
    np.testing.assert_array_equal(out.masks["others"], (labels == 12) * 255)
    assert int(out.masks.stack().sum()) == 255 * int((labels > 0).sum())


@given(
    labels=arrays(
        np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(0, 12)
    )
)
@settings(max_examples=30, deadline=None)
def test_label_png_round_trip(tmp_path_factory: pytest.TempPathFactory, labels: np.ndarray) -> None:
    folder = tmp_path_factory.mktemp("labels")
    label_png(folder, labels)
    image = np.zeros((*labels.shape, 3), np.uint8)
    out = ReplayEngine(folder).segment(image, classes=CLASSES, image_bytes=BYTES)
    expected = (labels[None] == np.arange(1, 13, dtype=np.uint8)[:, None, None]) * np.uint8(255)
    np.testing.assert_array_equal(out.masks.stack(), expected)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: np.full((6, 8), 13, np.uint8), "holds the value 13"),
        (lambda: np.zeros((6, 8, 3), np.uint8), "has mode RGB"),
    ],
)
def test_bad_label_pngs(tmp_path: Path, make, match: str) -> None:
    write_png(tmp_path / f"{replay_key(BYTES)}.png", make())
    with pytest.raises(EngineError, match=match):
        ReplayEngine(tmp_path).segment(IMAGE, classes=["tops"], image_bytes=BYTES)


def test_corrupt_record_is_an_engine_error(tmp_path: Path) -> None:
    folder = record(tmp_path, BYTES, soft_masks())
    (folder / "masks.json").write_text("{not json")
    with pytest.raises(EngineError, match="record it again"):
        ReplayEngine(tmp_path).segment(IMAGE, classes=["tops"], image_bytes=BYTES)


def test_recording_again_replaces_the_record_even_when_cached(tmp_path: Path) -> None:
    engine = ReplayEngine(tmp_path)
    write_png(tmp_path / f"{replay_key(BYTES)}.png", np.ones((6, 8), np.uint8))
    first = engine.segment(IMAGE, classes=["hair"], image_bytes=BYTES)
    assert first.masks["hair"].all()
    record(tmp_path, BYTES, soft_masks())
    assert not (tmp_path / f"{replay_key(BYTES)}.png").exists()  # folder record wins
    second = engine.segment(IMAGE, classes=["hair"], image_bytes=BYTES)
    np.testing.assert_array_equal(second.masks["hair"], soft_masks()["hair"])
    record(tmp_path, BYTES, {"hair": np.zeros((6, 8), bool)})
    third = engine.segment(IMAGE, classes=["hair"], image_bytes=BYTES)
    assert not third.masks["hair"].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [replay_key(BYTES)]  # no leftovers


def test_record_refuses_parts_of_another_shape(tmp_path: Path) -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(2, 2\).*\(6, 8\)"):
        record(tmp_path, BYTES, soft_masks(), {"tops_0": np.zeros((2, 2), bool)})
    assert list(tmp_path.iterdir()) == []


def test_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPLAY_DIR_ENV, raising=False)
    with pytest.raises(ConfigurationError, match="--replay-dir"):
        ReplayEngine()
    with pytest.raises(ConfigurationError, match="does not exist"):
        ReplayEngine(tmp_path / "missing")
    monkeypatch.setenv(REPLAY_DIR_ENV, os.fspath(tmp_path))
    engine = get_engine("replay")
    assert isinstance(engine, ReplayEngine) and engine.replay_dir == tmp_path
    assert engine.name == "replay" and str(tmp_path) in repr(engine)
