"""Test controls: reset, the task listing, and every injected fault (by header and at
random); none of it exists without --test-controls."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
import requests
from _server_support import (
    body_of,
    create,
    query,
    record_photo,
    replay_fixture,
    server_fixture,
    wait_done,
)
from PIL import Image, UnidentifiedImageError

from clothseg_tools.contract import STATE_PROCESSING, STATE_SUCCEEDED
from clothseg_tools.errors import ConfigurationError
from clothseg_tools.server import ServerSettings, run_in_thread
from clothseg_tools.server.store import TaskRecord
from clothseg_tools.server.worker import reveal

FAULT = "X-Clothseg-Fault"


replay_dir = replay_fixture()
server = server_fixture(test_controls=True)


@pytest.fixture
def image(replay_dir: Path) -> bytes:
    return record_photo(replay_dir, 0)


def created(base: str) -> int:
    return requests.get(base + "/_clothseg/tasks", timeout=10).json()["data"]["created"]


@pytest.mark.parametrize(
    ("fault", "status", "retry_after", "message"),
    [
        ("status=503", 503, None, "Injected fault: status 503"),
        ("status=429", 429, "1", "Injected fault"),
        ("status=429;retry_after=2.5", 429, "2.5", "Injected fault"),
        ("status=500; message=disk on fire", 500, None, "disk on fire"),
        ("status=401", 401, None, "Injected fault"),
    ],
)
def test_status_faults_answer_without_acting(
    server: str, image: bytes, fault: str, status: int, retry_after: str | None, message: str
) -> None:
    before = created(server)
    answer = create(server, image, headers={FAULT: fault})
    body = body_of(answer)
    assert body == {"status": status, "message": body["message"], "data": None}
    assert message in body["message"]
    assert answer.headers.get("Retry-After") == retry_after
    assert created(server) == before
    assert body_of(query(server, "any-id", headers={FAULT: fault}))["status"] == status


def test_latency_fault(server: str, image: bytes) -> None:
    start = time.perf_counter()
    body = body_of(create(server, image, headers={FAULT: "latency=0.4"}))
    assert time.perf_counter() - start >= 0.4 and body["status"] == 200


def test_drop_before_acting(server: str, image: bytes) -> None:
    before = created(server)
    with pytest.raises(requests.ConnectionError):
        create(server, image, headers={FAULT: "drop"})
    with pytest.raises(requests.ConnectionError):
        query(server, "any-id", headers={FAULT: "drop=before"})
    assert created(server) == before
    assert requests.get(server + "/healthz", timeout=10).status_code == 200  # still serving


def test_drop_after_acting(server: str, image: bytes) -> None:
    before = {t["task_id"] for t in tasks(server)}
    with pytest.raises(requests.ConnectionError):
        create(server, image, headers={FAULT: "drop=after"})
    new = [t for t in tasks(server) if t["task_id"] not in before]
    assert len(new) == 1  # the task exists although the client never heard of it
    assert wait_done(server, new[0]["task_id"])["data"]["state"] == 1


def tasks(base: str) -> list[dict]:
    return requests.get(base + "/_clothseg/tasks", timeout=10).json()["data"]["tasks"]


def test_corrupt_mask_fault(server: str, image: bytes) -> None:
    data = body_of(create(server, image, sync=1, output_type=3, headers={FAULT: "corrupt_mask"}))
    data = data["data"]
    for link in data["class_masks"].values():
        content = requests.get(link, timeout=10).content
        assert content.startswith(b"\x89PNG")  # looks like a PNG...
        with pytest.raises((OSError, UnidentifiedImageError)):  # ...but does not decode
            Image.open(io.BytesIO(content)).load()
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(requests.get(data["clothes_masks"], timeout=10).content))


def test_expire_fault(server: str, image: bytes) -> None:
    data = body_of(create(server, image, sync=1, headers={FAULT: "expire"}))["data"]
    assert data["state"] == 1  # the answer that shows it finished still carries the links
    assert body_of(requests.get(data["class_masks"]["tops"], timeout=10))["status"] == 410
    assert body_of(query(server, data["task_id"]))["status"] == 404


def test_expire_after_seconds_fault(server: str, image: bytes) -> None:
    data = body_of(create(server, image, sync=1, headers={FAULT: "expire=1"}))["data"]
    assert body_of(query(server, data["task_id"]))["status"] == 200
    time.sleep(1.1)
    assert body_of(query(server, data["task_id"]))["status"] == 404
    assert body_of(requests.get(data["class_masks"]["tops"], timeout=10))["status"] == 410


@pytest.mark.parametrize(
    ("header", "match"),
    [
        ("explode", "Unknown fault 'explode'"),
        ("status=200", "from 400 to 599"),
        ("latency=-1", "non-negative number"),
        ("drop=sideways", "drop=after"),
    ],
)
def test_bad_fault_header_is_400(server: str, image: bytes, header: str, match: str) -> None:
    body = body_of(create(server, image, headers={FAULT: header}))
    assert body["status"] == 400 and match in body["message"]


def test_bad_progression_header_is_400(server: str, image: bytes) -> None:
    body = body_of(create(server, image, headers={"X-Clothseg-Progression": "soon"}))
    assert body["status"] == 400 and "manual:<reads>" in body["message"]


def test_faults_leave_other_paths_alone(server: str, image: bytes) -> None:
    link = body_of(create(server, image, sync=1))["data"]["class_masks"]["tops"]
    assert requests.get(link, headers={FAULT: "status=500"}, timeout=10).status_code == 200
    assert requests.get(server + "/healthz", headers={FAULT: "drop"}, timeout=10).ok


def outcomes(base: str, n: int) -> list[int]:
    return [query(base, "no-such-task").status_code for _ in range(n)]


def test_random_faults_are_repeatable_with_a_seed(replay_dir: Path) -> None:
    options = {
        "engine_options": {"replay_dir": replay_dir},
        "test_controls": True,
        "faults": {"status=503": 0.3, "status=429;retry_after=1": 0.2},
        "fault_seed": 11,
    }
    with run_in_thread(**options) as url:
        first = outcomes(url, 60)
    with run_in_thread(**options) as url:
        assert outcomes(url, 60) == first
    assert set(first) == {404, 429, 503}
    assert 0.25 < first.count(404) / 60 < 0.85


def test_reset_clears_everything(server: str, image: bytes) -> None:
    data = body_of(create(server, image, sync=1))["data"]
    answer = body_of(requests.post(server + "/_clothseg/reset", timeout=10))
    assert answer["data"]["removed"] >= 1
    assert tasks(server) == [] and created(server) == 0
    assert body_of(query(server, data["task_id"]))["status"] == 404
    assert body_of(requests.get(data["class_masks"]["tops"], timeout=10))["status"] == 404


def test_no_controls_without_the_flag(replay_dir: Path, image: bytes) -> None:
    with run_in_thread(engine_options={"replay_dir": replay_dir}) as url:
        for path in ("/_clothseg/reset", "/_clothseg/tasks"):
            assert requests.post(url + path, timeout=10).status_code in (404, 405)
        headers = {FAULT: "status=503", "X-Clothseg-Progression": "manual:5"}
        data = body_of(create(url, image, sync=1, headers=headers))["data"]
        assert data["state"] == 1


@pytest.mark.parametrize(
    "options",
    [{"progression": "manual:2"}, {"faults": {"drop": 0.1}}],
)
def test_controls_need_the_flag(options: dict) -> None:
    with pytest.raises(ConfigurationError, match="--test-controls"):
        ServerSettings(api_keys=("k",), **options)


@pytest.mark.parametrize("engine_estimate", [0, 40, 95])
def test_manual_reads_of_a_finished_task_each_show_more_progress(engine_estimate: int) -> None:
    # a slow engine's estimate may already stand at 95 when the task finishes; the n
    # manual reads must still each show a rise, so that clients see n changes
    rec = TaskRecord.new(class_type=1, output_type=1, detail_mode=1, quality=1,
                         progression="manual:3")  # fmt: skip
    rec.reported_progress = engine_estimate
    rec.state = STATE_SUCCEEDED
    shown = [reveal(rec, time.time(), mean_seconds=1.0, count_read=True) for _ in range(4)]
    states = [state for state, _ in shown]
    progress = [p for _, p in shown]
    assert states == [STATE_PROCESSING] * 3 + [STATE_SUCCEEDED]
    assert progress[-1] == 100
    assert all(a < b for a, b in zip([engine_estimate, *progress], progress, strict=False))
    assert progress[2] <= 99
