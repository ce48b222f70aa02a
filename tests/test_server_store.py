"""Result lifetime and persistence: expiry with a short TTL (task 404, links 410), signed
links, and a restart with --data-dir that loses nothing that was accepted."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from _server_support import (
    GateEngine,
    PatternEngine,
    body_of,
    create,
    gate_closed,
    photo,
    png_array,
    query,
    record_photo,
    replay_fixture,
    server_fixture,
    wait_done,
)
from hypothesis import given
from hypothesis import strategies as st

from clothseg_tools.server import ServerSettings, run_in_thread
from clothseg_tools.server.store import (
    STATE_QUEUED,
    STATE_SUCCEEDED,
    DiskStore,
    MemoryStore,
    TaskRecord,
)
from clothseg_tools.server.worker import TaskRunner

replay_dir = replay_fixture()
short_ttl = server_fixture(result_ttl=1.5, test_controls=True)


def rebase(link: str, base: str) -> str:
    """The same result link on another server address (after a restart on a new port)."""
    parts = urlsplit(link)
    return f"{base}{parts.path}?{parts.query}"


def test_results_expire_after_the_ttl(short_ttl: str, replay_dir: Path) -> None:
    data = body_of(create(short_ttl, record_photo(replay_dir, 0), sync=1, output_type=3))["data"]
    links = [*data["class_masks"].values(), data["clothes_masks"]]
    assert all(requests.get(link, timeout=10).status_code == 200 for link in links)
    time.sleep(1.6)
    body = body_of(query(short_ttl, data["task_id"]))
    assert body["status"] == 404 and "has expired" in body["message"]
    for link in links:
        body = body_of(requests.get(link, timeout=10))
        assert body["status"] == 410 and "expired" in body["message"]


def test_the_sweeper_removes_expired_tasks_unasked(short_ttl: str, replay_dir: Path) -> None:
    task_id = body_of(create(short_ttl, record_photo(replay_dir, 0), sync=1))["data"]["task_id"]
    deadline = time.monotonic() + 10
    while True:
        tasks = requests.get(short_ttl + "/_clothseg/tasks", timeout=10).json()["data"]["tasks"]
        if task_id not in {t["task_id"] for t in tasks}:
            break
        assert time.monotonic() < deadline, "expired task never swept"
        time.sleep(0.1)
    assert body_of(query(short_ttl, task_id))["status"] == 404


def test_links_are_signed(short_ttl: str, replay_dir: Path) -> None:
    data = body_of(create(short_ttl, record_photo(replay_dir, 0), sync=1))["data"]
    link = data["class_masks"]["tops"]
    path = urlsplit(link).path
    for bad in (short_ttl + path, short_ttl + path + "?sig=forged", link.replace("sig=", "sig=x")):
        body = body_of(requests.get(bad, timeout=10))
        assert body["status"] == 403 and "not valid" in body["message"]
    body = body_of(requests.get(link.replace("tops.png", "nope.png"), timeout=10))
    assert body["status"] == 404
    body = body_of(requests.get(short_ttl + "/results/unknown/tops.png?sig=x", timeout=10))
    assert body["status"] == 404
    answer = requests.get(link, timeout=10)
    assert answer.status_code == 200 and "max-age=" in answer.headers["cache-control"]


def test_restart_with_data_dir_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    data_dir = tmp_path / "data"
    options = {"engine": "test-gate", "data_dir": data_dir, "workers": 1, "test_controls": True}
    images = [photo(seed) for seed in range(4)]
    stop = TaskRunner.shutdown

    def shutdown(runner: TaskRunner) -> None:
        # once queued work is cancelled, let the running task finish
        runner._pool.shutdown(wait=False, cancel_futures=True)
        GateEngine.gate.set()
        stop(runner)

    monkeypatch.setattr(TaskRunner, "shutdown", shutdown)
    # the gate opener is outside: the server shuts down (with the hook above) first
    with gate_closed(), run_in_thread(**options) as first:
        GateEngine.gate.set()
        done = body_of(create(first, images[0], sync=1, output_type=3))["data"]
        expired = body_of(create(first, images[1], sync=1, headers={"X-Clothseg-Fault": "expire"}))
        expired_link = expired["data"]["class_masks"]["tops"]
        tops = requests.get(done["class_masks"]["tops"], timeout=10).content
        GateEngine.gate.clear()
        running = body_of(create(first, images[2]))["data"]["task_id"]
        for _ in range(3):  # the two sync tasks and the running one
            assert GateEngine.started.acquire(timeout=10)
        queued = body_of(create(first, images[3]))["data"]["task_id"]
    # closing(), not the connection itself: its context manager commits but leaves it open
    with contextlib.closing(sqlite3.connect(data_dir / "tasks.sqlite3")) as db:
        states = {
            row[0]: TaskRecord.from_json(row[1]).state
            for row in db.execute("SELECT task_id, record FROM tasks")
        }
    assert states[queued] == STATE_QUEUED and states[done["task_id"]] == STATE_SUCCEEDED

    with run_in_thread(**options) as second:
        again = body_of(query(second, done["task_id"]))["data"]
        assert again["task_id"] == done["task_id"] and again["completed_at"] == done["completed_at"]
        link = rebase(done["class_masks"]["tops"], second)
        assert again["class_masks"]["tops"] == link
        assert requests.get(link, timeout=10).content == tops
        zipped = requests.get(rebase(done["clothes_masks"], second), timeout=10)
        assert zipped.status_code == 200 and zipped.content[:2] == b"PK"
        assert png_array(tops).shape == (30, 40)
        for task_id in (running, queued):
            assert wait_done(second, task_id)["data"]["state"] == 1
        # an expiry is remembered across the restart too
        assert body_of(query(second, expired["data"]["task_id"]))["status"] == 404
        assert body_of(requests.get(rebase(expired_link, second), timeout=10))["status"] == 410
        listed = requests.get(second + "/_clothseg/tasks", timeout=10).json()["data"]["tasks"]
        assert {t["task_id"] for t in listed} == {done["task_id"], running, queued}
    assert list((data_dir / "inputs").iterdir()) == []  # finished tasks drop their input
    assert not list(data_dir.rglob("*.tmp"))  # every file was written atomically


def new_record(**fields) -> TaskRecord:
    return TaskRecord.new(class_type=1, output_type=3, detail_mode=1, quality=1, **fields)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_store_expire_purge_and_clear(tmp_path: Path, kind: str) -> None:
    store = MemoryStore() if kind == "memory" else DiskStore(tmp_path)
    old, fresh = new_record(), new_record()
    for rec in (old, fresh):
        store.add(rec, b"img")
        rec.state, rec.files = STATE_SUCCEEDED, ["tops.png"]
        store.put_results(rec, {"tops.png": b"png"})
        store.save(rec)
    old.expires_at, fresh.expires_at = 100.0, 10_000.0
    assert store.purge(now=200.0) == 1
    assert store.get(old.task_id) is None and store.was_expired(old.task_id)
    assert store.result(fresh.task_id, "tops.png") == b"png"
    store.clear()
    assert store.tasks() == [] and not store.was_expired(old.task_id)
    store.close()


def test_disk_store_reloads_records_and_requeues_unfinished(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    finished, running = new_record(), new_record()
    store.add(finished, b"a")
    store.add(running, b"b")
    finished.state, finished.files = STATE_SUCCEEDED, ["tops.png"]
    store.put_results(finished, {"tops.png": b"mask"})
    store.save(finished)
    running.state = 3
    store.save(running)
    store.close()
    again = DiskStore(tmp_path)
    assert again.get(finished.task_id) == finished
    assert again.result(finished.task_id, "tops.png") == b"mask"
    assert [r.task_id for r in again.pending()] == [running.task_id]
    assert again.get(running.task_id).state == STATE_QUEUED  # runs again from the queue
    assert again.input_bytes(running.task_id) == b"b"
    again.close()


@given(
    state=st.sampled_from([-1, 1, 2, 3]),
    times=st.lists(st.floats(0, 2e9, allow_nan=False), min_size=3, max_size=3),
    classes=st.lists(st.sampled_from(["tops", "hair", "dress"]), unique=True),
    message=st.text(max_size=50),
    expire_after=st.none() | st.floats(0, 1e4, allow_nan=False),
)
def test_task_record_json_round_trip(state, times, classes, message, expire_after) -> None:
    rec = new_record(expire_after=expire_after, corrupt_mask=bool(classes))
    rec.state, rec.message, rec.classes = state, message, classes
    rec.processed_at, rec.completed_at, rec.expires_at = times
    assert TaskRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_reset_while_a_task_runs_leaves_nothing_behind(tmp_path: Path, kind: str) -> None:
    store = MemoryStore() if kind == "memory" else DiskStore(tmp_path)

    class ResettingEngine(PatternEngine):
        def _segment(self, image, **kwargs):
            store.clear()  # a reset arrives while the engine works
            return super()._segment(image, **kwargs)

    runner = TaskRunner(ServerSettings(api_keys=("k",)), store, ResettingEngine)
    rec = new_record()
    store.add(rec, photo(0))
    runner._run(rec.task_id)
    runner.shutdown()
    assert store.get(rec.task_id) is None and store.result(rec.task_id, "tops.png") is None
    assert store._results == {} and store._inputs == {}
    if kind == "disk":
        assert [p for p in tmp_path.rglob("*") if p.is_file() and "sqlite" not in p.name] == []
    store.close()
