"""Batch throughput of the client: ``Client.segment_many(workers=8)`` against a plain
sequential loop of ``requests`` calls doing the same work, on the same local server.

Each task is asynchronous (``sync=0``): create, poll until done (both sides use the
same schedule: at once, then 0.5 s growing x1.5), download every mask link and decode
the PNGs to uint8 arrays. The server (replay engine, masks as links) runs in a separate
process, so ``time.process_time`` of this process is the client's own CPU. A last run
swaps the network for an in-memory transport to show the client's CPU per task
without the socket and HTTP-parsing cost.

Run: ``.venv/bin/python benchmarks/bench_client.py [--tasks 200] [--workers 8]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from requests.adapters import BaseAdapter

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.api import Client
from clothseg_tools.classes import CLASS_TYPES, CLASSES
from clothseg_tools.engines.replay import record

KEY = "bench-key"
ENDPOINT = "/api/tasks/visual/clothing-segmentation"
H, W = 384, 256

SERVER = """
import sys, time
from clothseg_tools.server import run_in_thread
with run_in_thread(engine="replay", engine_options={"replay_dir": sys.argv[1]},
                   api_keys=("bench-key",), port=int(sys.argv[2]), workers=4) as url:
    print(url, flush=True)
    sys.stdin.read()  # run until the benchmark closes our stdin
"""


def make_images(replay: Path, count: int) -> list[bytes]:
    """``count`` distinct JPEG photos, each with a recorded result of soft masks."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    images = []
    for i in range(count):
        pixels = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        masks = {}
        for c, name in enumerate(CLASSES):
            cy, cx = (37 * (i + c)) % H, (53 * (i + 2 * c)) % W
            dist = np.hypot(yy - cy, xx - cx)
            masks[name] = np.clip(255 - (dist - 60) * 8, 0, 255).astype(np.uint8)
        record(replay, data, MaskSet(masks))
        images.append(data)
    return images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(replay: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(replay), str(free_port())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the server did not start")
    return proc, url


def sequential(url: str, images: list[bytes]) -> int:
    """The baseline: one task after the other with plain requests calls."""
    done = 0
    with requests.Session() as session:
        session.headers["X-API-KEY"] = KEY
        for data in images:
            created = session.post(
                url + ENDPOINT,
                files={"image_file": ("photo.jpg", data, "image/jpeg")},
                data={"sync": "0", "class_type": "1", "output_type": "1"},
                timeout=(10, 60),
            ).json()
            task_id = created["data"]["task_id"]
            interval = 0.5
            while True:
                task = session.get(f"{url}{ENDPOINT}/{task_id}", timeout=(10, 60)).json()
                if int(task["data"]["state"]) == 1:
                    break
                time.sleep(interval)
                interval = min(interval * 1.5, 5.0)
            masks = {}
            for name, link in task["data"]["class_masks"].items():
                png = session.get(link, timeout=(10, 60)).content
                masks[name] = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
            done += len(masks) > 0
    return done


def batch(url: str, images: list[bytes], workers: int) -> int:
    with Client(api_key=KEY, base_url=url) as client:
        outcomes = list(client.segment_many(images, workers=workers, sync=False))
    failed = [o.error for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"{len(failed)} tasks failed, e.g. {failed[0]!r}")
    return sum(len(o.result.masks) > 0 for o in outcomes if o.result is not None)


class CannedTransport(BaseAdapter):
    """An in-memory transport: every answer is ready, no socket is touched."""

    def __init__(self, base: str, pngs: dict[str, bytes]) -> None:
        super().__init__()
        links = {name: f"{base}/results/T/{name}.png?sig=s" for name in pngs}
        self.answers = {
            "POST": json.dumps({"status": 200, "data": {"task_id": "T"}}).encode(),
            "GET": json.dumps(
                {
                    "status": 200,
                    "message": "success",
                    "data": {
                        "task_id": "T",
                        "state": 1,
                        "progress": 100,
                        "output_type": 1,
                        "created_at": "1700000000",
                        "processed_at": "1700000000",
                        "completed_at": "1700000001",
                        "class_masks": links,
                    },
                }
            ).encode(),
        }
        self.pngs = {f"{base}/results/T/{name}.png": data for name, data in pngs.items()}

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        response = requests.Response()
        url = str(request.url)
        body = self.pngs.get(url.split("?")[0]) or self.answers[str(request.method)]
        response.status_code, response.reason, response.url = 200, "OK", url
        response.request, response._content = request, body
        response.raw = io.BytesIO(body)
        return response

    def close(self) -> None:
        pass


def client_overhead(image: bytes, replay: Path, tasks: int, workers: int) -> tuple[float, float]:
    """CPU per task of segment_many over an in-memory transport, and of the PNG decoding
    alone (the same five masks the server sends)."""
    from clothseg_tools.decode import mask_from_bytes
    from clothseg_tools.engines.replay import ReplayEngine

    masks = (
        ReplayEngine(replay)
        .segment(np.zeros((H, W, 3), np.uint8), classes=CLASS_TYPES[1], image_bytes=image)
        .masks
    )
    pngs = {name: encode_png(masks[name]) for name in masks.classes}
    base = "http://in-memory.test"
    with Client(api_key=KEY, base_url=base) as client:
        client.session.mount("http://", CannedTransport(base, pngs))  # the client's own session
        list(client.segment_many([image] * 16, workers=workers, sync=False))  # warm up
        start = time.process_time()
        outcomes = list(client.segment_many([image] * tasks, workers=workers, sync=False))
        per_task = (time.process_time() - start) / tasks
    assert all(o.ok for o in outcomes), outcomes[0].error
    start = time.process_time()
    for _ in range(tasks):
        for data in pngs.values():
            mask_from_bytes(data)
    return per_task, (time.process_time() - start) / tasks


def timed(fn, *args) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    n = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--distinct", type=int, default=20, help="distinct images (cycled)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp)
        distinct = make_images(replay, args.distinct)
        images = [distinct[i % len(distinct)] for i in range(args.tasks)]
        proc, url = start_server(replay)
        try:
            batch(url, images[:8], args.workers)  # warm both sides: imports, pools
            sequential(url, images[:2])
            b_wall, b_cpu, b_n = timed(batch, url, images, args.workers)
            s_wall, s_cpu, s_n = timed(sequential, url, images)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=30)
        overhead, decoding = client_overhead(distinct[0], replay, 2 * args.tasks, args.workers)
    assert b_n == s_n == args.tasks
    n = args.tasks
    print(
        f"{n} async tasks, {W}x{H} JPEG inputs, class_type=1 (5 soft masks each, as links), "
        f"replay server in a separate process, {os.cpu_count()} CPUs"
    )
    print(
        f"sequential requests loop : {n / s_wall:7.2f} tasks/s  ({s_wall:6.1f} s)  "
        f"client CPU {1000 * s_cpu / n:5.2f} ms/task"
    )
    print(
        f"segment_many(workers={args.workers}) : {n / b_wall:7.2f} tasks/s  ({b_wall:6.1f} s)  "
        f"client CPU {1000 * b_cpu / n:5.2f} ms/task"
    )
    print(f"throughput ratio (segment_many / sequential): {s_wall / b_wall:.1f}x")
    print(
        f"client CPU per task over an in-memory transport (segment_many, {2 * n} tasks): "
        f"{1000 * overhead:.2f} ms, of which decoding the 5 mask PNGs {1000 * decoding:.2f} ms"
    )


if __name__ == "__main__":
    main()
