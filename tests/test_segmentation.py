"""``cst.segment``: one photo from the service when a key is configured, else in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _server_support import KEY, masks_for, record_photo

import clothseg_tools as cst
from clothseg_tools import engines
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.errors import ConfigurationError, EngineUnavailableError
from clothseg_tools.segmentation import choose_engine


@pytest.fixture
def no_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLOTHSEG_API_KEY", "CLOTHSEG_BASE_URL", "CLOTHSEG_REPLAY_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """``(photo file, replay folder)``: the replay engine knows the photo."""
    rec = tmp_path / "rec"
    photo = tmp_path / "photo.png"
    photo.write_bytes(record_photo(rec, 3))
    return photo, rec


class Stripes(Engine):
    name = "stripes"

    def _segment(self, image, *, classes, **_):  # type: ignore[no-untyped-def]
        m = np.zeros(image.shape[:2], np.uint8)
        m[::2] = 255
        return EngineOutput(cst.MaskSet({c: m for c in classes}), {})


def test_without_a_key_the_default_engine_answers_and_says_so(
    no_service: None, recorded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo, rec = recorded
    # a machine without mediapipe: the default engine is replay, with its records set
    monkeypatch.setattr(engines, "default_engine_name", lambda: "replay")
    monkeypatch.setenv("CLOTHSEG_REPLAY_DIR", str(rec))
    result = cst.segment(photo, class_type=4)
    assert isinstance(result, cst.SegmentationResult)
    assert result.engine == "replay" and result.task is None
    assert result.masks == masks_for(3)


def test_with_a_key_the_service_answers_and_says_so(
    no_service: None, recorded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = pytest.importorskip("clothseg_tools.server")
    photo, rec = recorded
    with server.run_in_thread(
        engine="replay", engine_options={"replay_dir": rec}, api_keys=(KEY,)
    ) as url:
        monkeypatch.setenv("CLOTHSEG_API_KEY", KEY)
        monkeypatch.setenv("CLOTHSEG_BASE_URL", url)
        remote = cst.segment(photo, class_type=4, output_type=3)
        # engine= overrides the key: the same records, in-process
        local = cst.segment(photo, class_type=4, output_type=3, engine="replay", replay_dir=rec)
    assert remote.engine == "remote" and remote.task is not None
    assert local.engine == "replay" and local.task is None
    assert remote.masks == local.masks
    # the service's parts ZIP carries garments only (the record's bag_0 stays out)
    assert set(remote.parts.classes) == set(local.parts.classes) - {"bag_0"}
    asked = {"class_type": 4, "output_type": 3, "detail_mode": 1, "quality": 1}
    assert local.options == asked and asked.items() <= remote.options.items()


def test_an_engine_instance_is_used_as_it_is(no_service: None) -> None:
    result = cst.segment(np.zeros((6, 4, 3), np.uint8), engine=Stripes(), class_type=3)
    assert result.engine == "stripes"
    assert result.masks.classes == cst.CLASS_TYPES[3]
    assert result.masks["hair"][0].all() and not result.masks["hair"][1].any()


def test_no_key_and_no_engine_says_what_to_set_or_install(
    no_service: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "default_engine_name", lambda: "replay")
    with pytest.raises(EngineUnavailableError, match=r"CLOTHSEG_API_KEY.*\[local\]"):
        cst.segment(np.zeros((4, 4, 3), np.uint8))


def test_engine_options_are_refused_by_the_service(no_service: None) -> None:
    with pytest.raises(ConfigurationError, match="replay_dir"):
        cst.segment(np.zeros((4, 4, 3), np.uint8), engine="remote", replay_dir="x")


def test_options_are_checked_before_anything_runs(no_service: None) -> None:
    with pytest.raises(ValueError, match="class_type must be one of 1, 2, 3, 4"):
        cst.segment(np.zeros((4, 4, 3), np.uint8), engine=Stripes(), class_type=5)


@pytest.mark.parametrize(
    ("engine", "key", "expected"),
    [
        ("auto", "k", "remote"),
        (None, "k", "remote"),
        ("local", "k", "local"),
        ("onnx", None, "onnx"),
    ],
)
def test_choose_engine(
    no_service: None, engine: str | None, key: str | None, expected: str
) -> None:
    assert choose_engine(engine, api_key=key) == expected
