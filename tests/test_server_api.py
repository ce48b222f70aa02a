"""The server's API over real HTTP: the task lifecycle in both modes, class and output
types, mask formats, option encodings, progression, and the OpenAPI description."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from _server_support import (
    AUTH,
    KEY,
    TASK_KEYS,
    TASKS,
    GateEngine,
    body_of,
    create,
    gate_closed,
    masks_for,
    parts_for,
    png_array,
    query,
    record_photo,
    replay_fixture,
    server_fixture,
    solid_png,
    wait_done,
)

from clothseg_tools.classes import CLASS_TYPES, GARMENT_CLASSES
from clothseg_tools.server import run_in_thread
from clothseg_tools.zipmasks import read_mask_zip

replay_dir = replay_fixture(seeds=4)
server = server_fixture(engine="replay", test_controls=True, workers=2)
b64_server = server_fixture(mask_format="base64", workers=1)


def check_masks(data: dict, seed: int, class_type: int) -> None:
    expected = masks_for(seed)
    assert list(data["class_masks"]) == list(CLASS_TYPES[class_type])
    for name, link in data["class_masks"].items():
        answer = requests.get(link, timeout=10)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(png_array(answer.content), expected[name], err_msg=name)


def test_sync_task_answers_the_finished_task(server: str, replay_dir: Path) -> None:
    image = record_photo(replay_dir, 0)
    before = time.time()
    body = body_of(create(server, image, sync=1))
    assert body["message"] == "success"
    data = body["data"]
    assert set(data) == TASK_KEYS
    assert data["state"] == 1 and data["progress"] == 100 and data["output_type"] == 1
    stamps = [data[k] for k in ("created_at", "processed_at", "completed_at")]
    assert all(isinstance(s, str) and s.isdigit() for s in stamps)
    assert int(before) <= int(stamps[0]) <= int(stamps[1]) <= int(stamps[2]) <= time.time()
    check_masks(data, 0, class_type=1)
    # the same task answers the same way when queried
    assert body_of(query(server, data["task_id"]))["data"] == data


def test_async_task_lifecycle(server: str, replay_dir: Path) -> None:
    image = record_photo(replay_dir, 1)
    body = body_of(create(server, image))
    assert body == {
        "status": 200,
        "message": "success",
        "data": {"task_id": body["data"]["task_id"]},
    }
    final = wait_done(server, body["data"]["task_id"])
    assert final["data"]["state"] == 1
    check_masks(final["data"], 1, class_type=1)


def test_tasks_are_seen_queued_then_running(replay_dir: Path) -> None:
    with run_in_thread(engine="test-gate", workers=1, sync_timeout=0.2) as url, gate_closed():
        first = body_of(create(url, record_photo(replay_dir, 0)))["data"]["task_id"]
        assert GateEngine.started.acquire(timeout=10)
        second = body_of(create(url, record_photo(replay_dir, 1)))["data"]["task_id"]
        running = body_of(query(url, first))["data"]
        queued = body_of(query(url, second))["data"]
        assert running["state"] == 3 and 1 <= running["progress"] <= 99
        assert running["processed_at"] is not None and running["completed_at"] is None
        assert queued["state"] == 2 and queued["progress"] == 0
        assert queued["processed_at"] is None and queued["class_masks"] == {}
        # the event loop stays free while the engine works
        assert requests.get(url + "/healthz", timeout=5).json()["queued"] == 2
        # a sync request that outlives --sync-timeout answers with the processing state
        third = body_of(create(url, record_photo(replay_dir, 2), sync=1))["data"]
        assert third["state"] == 2 and third["class_masks"] == {}
        GateEngine.gate.set()
        for task_id in (first, second, third["task_id"]):
            assert wait_done(url, task_id)["data"]["state"] == 1


@pytest.mark.parametrize("class_type", [1, 2, 3, 4])
def test_class_type_selects_the_classes(server: str, replay_dir: Path, class_type: int) -> None:
    image = record_photo(replay_dir, 2)
    data = body_of(create(server, image, sync=1, class_type=class_type))["data"]
    check_masks(data, 2, class_type)


@pytest.mark.parametrize("output_type", [1, 2, 3])
def test_output_type_and_zip_contents(server: str, replay_dir: Path, output_type: int) -> None:
    image = record_photo(replay_dir, 3)
    data = body_of(create(server, image, sync=1, output_type=output_type, class_type=4))["data"]
    assert data["output_type"] == output_type
    assert ("clothes_masks" in data) == (output_type in (2, 3))
    if output_type == 2:
        assert data["class_masks"] == {}
    else:
        check_masks(data, 3, class_type=4)
    if output_type in (2, 3):
        answer = requests.get(data["clothes_masks"], timeout=10)
        assert answer.headers["content-type"] == "application/zip"
        parts = read_mask_zip(answer.content)
        garments = {k: v for k, v in parts_for(3).items() if k.split("_")[0] in GARMENT_CLASSES}
        assert sorted(parts) == sorted(garments) and "bag_0" not in parts
        for name, mask in garments.items():
            np.testing.assert_array_equal(parts[name], mask)


def test_base64_masks(b64_server: str, replay_dir: Path) -> None:
    image = record_photo(replay_dir, 0)
    data = body_of(create(b64_server, image, sync=1, output_type=3))["data"]
    expected = masks_for(0)
    for name, value in data["class_masks"].items():
        np.testing.assert_array_equal(png_array(base64.b64decode(value)), expected[name])
    assert data["clothes_masks"].startswith(b64_server + "/results/")


@pytest.mark.parametrize(
    "fields",
    [
        {"sync": "1", "class_type": "3", "output_type": "1", "detail_mode": "2", "quality": "2"},
        {"sync": " 1 ", "class_type": "3.0"},
        {"sync": 1, "class_type": 3, "detail_mode": 2, "quality": 2},
    ],
)
def test_options_as_strings_or_numbers(server: str, replay_dir: Path, fields: dict) -> None:
    image = record_photo(replay_dir, 1)
    files = {"image_file": ("p.png", image)}
    body = body_of(
        requests.post(server + TASKS, headers=AUTH, files=files, data=fields, timeout=30)
    )
    assert list(body["data"]["class_masks"]) == list(CLASS_TYPES[3])


def test_image_url_given_as_json_with_numbers(server: str, replay_dir: Path, http_server) -> None:
    url = http_server.add("/img.png", record_photo(replay_dir, 2), content_type="image/png")
    with run_in_thread(
        engine_options={"replay_dir": replay_dir}, allow_private_urls=True
    ) as private_ok:
        answer = requests.post(
            private_ok + TASKS,
            headers=AUTH,
            json={"image_url": url, "sync": 1, "class_type": 2},
            timeout=30,
        )
        data = body_of(answer)["data"]
        check_masks(data, 2, class_type=2)


def test_progression_time(server: str, replay_dir: Path) -> None:
    image = record_photo(replay_dir, 0)
    headers = {"X-Clothseg-Progression": "time:1.0"}
    task_id = body_of(create(server, image, headers=headers))["data"]["task_id"]
    seen = []
    while True:
        data = body_of(query(server, task_id))["data"]
        seen.append((data["state"], data["progress"]))
        if data["state"] == 1:
            break
        time.sleep(0.05)
    assert seen[0][0] > 1 and seen[-1] == (1, 100)
    progress = [p for _, p in seen]
    assert progress == sorted(progress)  # never goes back
    assert len(set(progress[:-1])) > 1  # rises while waiting
    # sync waits for the time progression too
    data = body_of(create(server, image, sync=1, headers=headers))["data"]
    assert data["state"] == 1


def actual_state(base: str, task_id: str) -> int:
    """The task's real state, read through the test controls (not a status read)."""
    tasks = requests.get(base + "/_clothseg/tasks", timeout=10).json()["data"]["tasks"]
    return next(t["state"] for t in tasks if t["task_id"] == task_id)


@pytest.mark.parametrize("reads", [0, 1, 3])
def test_progression_manual(server: str, replay_dir: Path, reads: int) -> None:
    image = record_photo(replay_dir, 1)
    headers = {"X-Clothseg-Progression": f"manual:{reads}"}
    task_id = body_of(create(server, image, headers=headers))["data"]["task_id"]
    deadline = time.monotonic() + 10
    while actual_state(server, task_id) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    shown = [body_of(query(server, task_id))["data"] for _ in range(reads + 2)]
    assert [d["state"] for d in shown] == [3] * reads + [1, 1]
    progress = [d["progress"] for d in shown]
    assert progress == sorted(progress) and progress[-1] == 100
    assert all(0 <= p < 100 for p in progress[:reads])
    assert all(d["class_masks"] == {} for d in shown[:reads])


def test_server_wide_progression_and_sync_read(replay_dir: Path) -> None:
    image = record_photo(replay_dir, 2)
    with run_in_thread(
        engine_options={"replay_dir": replay_dir}, test_controls=True, progression="manual:2"
    ) as url:
        first = body_of(create(url, image, sync=1))["data"]
        assert first["state"] == 3 and first["class_masks"] == {}  # read 1 of 2
        assert body_of(query(url, first["task_id"]))["data"]["state"] == 3  # read 2
        final = body_of(query(url, first["task_id"]))["data"]
        assert final["state"] == 1 and final["progress"] == 100


def test_openapi_and_health(server: str) -> None:
    spec = requests.get(server + "/openapi.json", timeout=10).json()
    assert set(spec["paths"]) == {TASKS, TASKS + "/{task_id}"}
    post = spec["paths"][TASKS]["post"]
    assert set(post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]) == {
        "image_file",
        "image_url",
        "sync",
        "detail_mode",
        "output_type",
        "quality",
        "class_type",
    }
    assert {"200", "400", "401", "413", "415", "422", "429", "500"} <= set(post["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-KEY"
    health = requests.get(server + "/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["engine"] == "replay"
    assert KEY not in requests.get(server + "/healthz", timeout=10).text


def test_public_url_and_clean_shutdown(replay_dir: Path) -> None:
    image = record_photo(replay_dir, 0)
    before = set(threading.enumerate())
    with run_in_thread(
        engine_options={"replay_dir": replay_dir}, public_url="https://seg.example.com/v1/"
    ) as url:
        data = body_of(create(url, image, sync=1))["data"]
        assert data["class_masks"]["tops"].startswith("https://seg.example.com/v1/results/")
    alive = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("clothseg-")]
    assert alive == []  # this server's thread and its engine workers are gone
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/healthz", timeout=2)


def test_detail_mode_and_quality_reach_the_engine() -> None:
    with run_in_thread(engine="test-echo") as url:
        for detail_mode, quality in [(1, 1), (1, 2), (2, 1), (2, 2)]:
            fields = {"sync": 1, "detail_mode": detail_mode, "quality": quality}
            data = body_of(create(url, solid_png(9), **fields))["data"]
            mask = png_array(requests.get(data["class_masks"]["tops"], timeout=10).content)
            assert (mask == 10 * detail_mode + quality).all(), (detail_mode, quality)
