"""Options travel as objects: the contract's Options (what to compute) and BatchOptions
(how to run), through segment_batch and run_job unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from _scale_support import folder_files, make_photos, manifest_view

from clothseg_tools.batch import BatchOptions, Shard, discover_inputs
from clothseg_tools.batch.segment import segment_batch
from clothseg_tools.contract import Options
from clothseg_tools.errors import ConfigurationError


def test_objects_and_keywords_give_the_same_batch(tmp_path: Path) -> None:
    make_photos(tmp_path / "p", tmp_path / "rec", 6)
    items = discover_inputs([tmp_path / "p"])
    common = {"engine": "replay", "replay_dir": tmp_path / "rec"}
    a = segment_batch(items, tmp_path / "a", Options(class_type=4, output_type=3),
                      BatchOptions(workers=2), **common)  # fmt: skip
    b = segment_batch(items, tmp_path / "b", class_type=4, output_type=3, workers=2, **common)
    assert (a.done, a.failed) == (b.done, b.failed) == (6, 1)
    assert folder_files(tmp_path / "a") == folder_files(tmp_path / "b")
    view = manifest_view(tmp_path / "a")
    assert view == manifest_view(tmp_path / "b")
    assert {r["options"]["class_type"] for r in view.values()} == {4}
    # a keyword replaces the object's field
    c = segment_batch(items, tmp_path / "a", Options(class_type=4, output_type=3),
                      BatchOptions(workers=2), overwrite=True, **common)  # fmt: skip
    assert c.done == 6 and c.skipped == 0


def test_bad_settings_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="colour"):
        segment_batch([], tmp_path, engine="replay", replay_dir=tmp_path, colour=1)
    with pytest.raises(ValueError, match="class_type"):
        segment_batch([], tmp_path, engine="replay", replay_dir=tmp_path, class_type=9)
    with pytest.raises(ConfigurationError, match="'local' or 'ray'"):
        BatchOptions(executor="spark")
    with pytest.raises(ValueError, match="at least 1"):
        BatchOptions(workers=0)
    with pytest.raises(ValueError, match="above 0"):
        BatchOptions(rate_limit=0)
    assert BatchOptions(shard="1/2").shard == Shard(1, 2)
