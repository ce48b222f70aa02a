"""Executors receive one run as an ExecutorRun: a new executor implements ``execute``
and ``run_job`` drives it like the built-in ones."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from clothseg_tools.batch import (
    BatchItem,
    BatchOptions,
    Executor,
    ExecutorRun,
    ItemOutput,
    Job,
    LocalExecutor,
    Manifest,
    file_checksums,
    read_manifest,
    run_item,
    run_job,
)


class InOrder(Executor):
    """One item after another on the calling thread; keeps the runs it was given."""

    name = "in-order"

    def __init__(self) -> None:
        super().__init__(1)
        self.runs: list[ExecutorRun] = []

    def execute(self, work: ExecutorRun) -> Generator[dict[str, Any], None, None]:
        self.runs.append(work)
        for item in work.items:
            if work.stop is not None and work.stop.is_set():
                return
            self.started += 1
            record = run_item(work.job, item, work.options)
            work.manifest.append(record)
            yield record


def writer(out: Path) -> Job:
    def work(item: BatchItem) -> ItemOutput:
        if item.source == "bad":
            raise ValueError("bad input")
        (out / f"{item.key}.txt").write_text(item.source)
        return ItemOutput(checksums=file_checksums(out, [f"{item.key}.txt"]))

    return Job("write", work, out, options={"size": 3})


ITEMS = [BatchItem("a", "a"), BatchItem("bad", "bad"), BatchItem("c", "c")]


def test_run_job_drives_a_new_executor_like_the_local_one(tmp_path: Path) -> None:
    executor = InOrder()
    stop = threading.Event()
    summary = run_job(
        writer(tmp_path / "x"),
        ITEMS,
        BatchOptions(executor=executor, rate_limit=50.0),
        stop=stop,
    )
    local = run_job(writer(tmp_path / "y"), ITEMS, BatchOptions(workers=2))
    assert (summary.done, summary.failed, summary.not_started) == (2, 1, 0)
    assert (local.done, local.failed) == (summary.done, summary.failed)
    (work,) = executor.runs
    assert [i.source for i in work.items] == ["a", "bad", "c"]
    assert work.options == {"size": 3} and work.rate_limit == 50.0 and work.stop is stop
    assert work.manifest.path == tmp_path / "x" / "manifest-write.jsonl"
    records = read_manifest(work.manifest.path)
    assert {k: r["status"] for k, r in records.items()} == {
        "a": "done",
        "bad": "failed",
        "c": "done",
    }
    # a rerun hands the executor only what is left to do
    run_job(writer(tmp_path / "x"), ITEMS, BatchOptions(executor=executor, retry_failed=True))
    assert [i.source for i in executor.runs[-1].items] == ["bad"]


def test_run_builds_the_work_and_starts_the_counters_again(tmp_path: Path) -> None:
    executor = LocalExecutor(2)
    executor.started, executor.interrupted = 9, True
    with Manifest(tmp_path / "m.jsonl") as manifest:
        records = list(
            executor.run(writer(tmp_path), ITEMS, options={"size": 3}, manifest=manifest)
        )
    assert sorted(r["source"] for r in records) == ["a", "bad", "c"]
    assert (executor.started, executor.interrupted) == (3, False)
    assert all(r["options"] == {"size": 3} for r in records)
    assert set(read_manifest(tmp_path / "m.jsonl")) == {"a", "bad", "c"}


def test_an_executor_without_execute_cannot_be_made() -> None:
    class Forgetful(Executor):
        pass

    with pytest.raises(TypeError, match="execute"):
        Forgetful()  # type: ignore[abstract]
