"""Load: 200 tasks from 16 client threads against the replay engine complete with no
error, and no task is lost, duplicated or given another image's result."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import requests
from _server_support import (
    AUTH,
    TASKS,
    body_of,
    concurrently,
    masks_for,
    png_array,
    record_photo,
    wait_done,
)

from clothseg_tools.server import run_in_thread

REQUESTS = 200
THREADS = 16
IMAGES = 8


def test_200_tasks_from_16_threads(tmp_path: Path) -> None:
    images = [record_photo(tmp_path, seed) for seed in range(IMAGES)]
    with run_in_thread(
        engine_options={"replay_dir": tmp_path}, test_controls=True, workers=2
    ) as base:
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.headers.update(AUTH)
            return local.session

        def one(i: int) -> tuple[int, str, dict]:
            seed = i % IMAGES
            files = {"image_file": (f"p{seed}.png", images[seed])}
            sync = i % 2
            answer = session().post(base + TASKS, files=files, data={"sync": sync}, timeout=60)
            body = body_of(answer)
            assert body["status"] == 200, body
            task_id = body["data"]["task_id"]
            final = body if sync and body["data"]["state"] == 1 else wait_done(base, task_id)
            assert final["data"]["state"] == 1, final
            # one mask per task is checked against the image that was sent
            link = final["data"]["class_masks"]["tops"]
            tops = png_array(session().get(link, timeout=30).content)
            np.testing.assert_array_equal(tops, masks_for(seed)["tops"])
            return seed, task_id, final["data"]

        results = concurrently(one, range(REQUESTS), THREADS)
        listed = requests.get(base + "/_clothseg/tasks", timeout=30).json()["data"]
    ids = [task_id for _, task_id, _ in results]
    assert len(set(ids)) == REQUESTS  # no duplicates, none lost
    assert listed["created"] == REQUESTS
    assert sorted(t["task_id"] for t in listed["tasks"]) == sorted(ids)
    assert all(t["state"] == 1 for t in listed["tasks"])
