"""The demo and the engine registry where the local engine cannot be installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clothseg_tools import MaskSet, SegmentationResult, engines
from clothseg_tools import demo as demo_module
from clothseg_tools.errors import EngineUnavailableError, install_hint


def test_recordings_cover_every_sample_photo(tmp_path: Path) -> None:
    photos = demo_module.sample_photos(tmp_path)
    for photo in photos:
        recorded = demo_module.RECORDINGS / photo.relative_to(tmp_path).with_suffix("")
        masks = MaskSet.load(recorded)
        assert len(masks.classes) == 12
        # a recording answers the photo it was made from: same (H, W)
        from PIL import Image

        with Image.open(photo) as im:
            assert masks.shape == (im.height, im.width)


def test_demo_replays_recordings_without_mediapipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_module, "_local_engine_installed", lambda: False)
    said: list[str] = []
    result = demo_module.run_demo(tmp_path / "demo", workers=1, log=said.append)
    assert result.replayed and result.exit_code == 0
    assert demo_module.REPLAY_NOTICE in said
    assert result.report is not None
    page = result.report.read_text()
    assert "Replayed results" in page and "clothseg demo (replayed)" in page
    saved = SegmentationResult.load(result.results / "astronaut")
    recorded = MaskSet.load(demo_module.RECORDINGS / "astronaut")
    np.testing.assert_array_equal(saved.masks.stack(recorded.classes), recorded.stack())
    # a rerun resumes from the same replay folder instead of failing on it
    again = demo_module.run_demo(tmp_path / "demo", workers=1)
    assert again.replayed and again.exit_code == 0


def test_demo_with_mediapipe_is_not_labelled_a_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clothseg_tools.engines.replay import ReplayEngine

    monkeypatch.setattr(demo_module, "_local_engine_installed", lambda: True)
    photos = demo_module.sample_photos(tmp_path / "demo" / "photos")
    engine = ReplayEngine(
        demo_module.replay_recordings(tmp_path / "demo" / "photos", photos, tmp_path / "r")
    )
    result = demo_module.run_demo(tmp_path / "demo", engine=engine, workers=1)
    assert not result.replayed
    assert result.report is not None and "Replayed results" not in result.report.read_text()


def test_engine_outside_its_pythons_says_which_pythons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(engines._REGISTRY, "pinned", "clothseg_tools_no_such_module:Engine")
    monkeypatch.setitem(engines._PYTHONS, "pinned", ((2, 6), (2, 7), "somepackage 1.0"))
    with pytest.raises(EngineUnavailableError, match=r"published for Python 2\.6 to 2\.7 only"):
        engines.get_engine("pinned")


def test_missing_engine_names_both_install_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(engines._REGISTRY, "extra", "clothseg_tools_no_such_module:Engine")
    with pytest.raises(EngineUnavailableError) as info:
        engines.get_engine("extra")
    message = str(info.value)
    assert "pip install 'clothseg_tools[extra]'" in message
    assert 'pip install -e ".[extra]"' in message
    assert install_hint("extra") in message
