"""Throughput and overhead of the local server (``clothseg serve``) with the replay engine.

1. Async tasks: 16 client threads each create a task (``sync=0``) and poll it until
   done. Printed: tasks/s and HTTP requests/s.
2. Sync tasks: 16 client threads send ``sync=1`` creates. Printed: tasks/s.
3. Added latency: one client sends sync tasks one after another; the median request
   time is compared with the engine's own median time for the image (the baseline),
   and with the whole per-task pipeline run outside the server (decode the upload, run
   the engine, encode the PNG masks). The differences are what the server adds: the
   pipeline around the engine, then HTTP, multipart parsing, the input checks, the hop
   onto a worker thread, the task store and the JSON answer.

The server runs as ``clothseg serve`` in a child process (the client threads would
otherwise share its interpreter lock). The baselines run in this process on the same
image: the in-process pipeline's own rate with as many threads as the server has
workers (for 1 and 2), and the engine's time per image (for 3).
Run: ``.venv/bin/python benchmarks/bench_server.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.classes import CLASS_TYPES, CLASSES
from clothseg_tools.engines.replay import ReplayEngine, record
from clothseg_tools.inputs import check_image_bytes, decode_input_image

KEY = "bench-key"
TASKS = "/api/tasks/visual/clothing-segmentation"


def photo(shape: tuple[int, int], seed: int) -> bytes:
    """A JPEG with smooth gradients (compresses like a photo, unlike noise)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        img[..., c] = (127 + 100 * np.sin(xx / (37 + seed) + yy / 53 + c)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def masks(shape: tuple[int, int]) -> MaskSet:
    """Blob-shaped soft masks, one per class."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    stack = np.zeros((len(CLASSES), h, w), np.uint8)
    for i in range(len(CLASSES)):
        cy, cx, r = h * (0.2 + 0.05 * i), w * (0.3 + 0.04 * i), min(h, w) * 0.2
        d = np.hypot(yy - cy, xx - cx)
        stack[i] = np.clip((r - d) * 16, 0, 255).astype(np.uint8)
    return MaskSet.from_stack(stack, CLASSES)


def pipeline(engine: ReplayEngine, data: bytes) -> None:
    """What the server does for one task, outside the server."""
    check_image_bytes(data)
    image = decode_input_image(data)
    out = engine.segment(image, classes=CLASS_TYPES[1], image_bytes=data)
    for name in CLASS_TYPES[1]:
        encode_png(out.masks[name])


@contextlib.contextmanager
def serve(replay_dir: Path, workers: int) -> Iterator[str]:
    """``clothseg serve`` in a child process, so that the client threads of this process
    do not compete with the server for one interpreter lock."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "from clothseg_tools.server.cli import serve_command as s; s()"
    command = [
        sys.executable, "-c", code, "--port", str(port), "--engine", "replay",
        "--replay-dir", str(replay_dir), "--workers", str(workers), "--api-key", KEY,
        "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("clothseg serve did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def rate(fn: Callable[[int], object], n: int, threads: int) -> float:
    """Calls per second of ``fn(i)`` for i < n on ``threads`` threads."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, range(n)))
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=400, help="tasks per measurement")
    parser.add_argument("--threads", type=int, default=16, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="server engine workers")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 384), metavar=("W", "H"))
    args = parser.parse_args()
    shape = (args.size[1], args.size[0])
    replay_dir = Path(tempfile.mkdtemp(prefix="bench-server-"))
    images = [photo(shape, seed) for seed in range(8)]
    for data in images:
        record(replay_dir, data, masks(shape))
    engine = ReplayEngine(replay_dir)
    print(
        f"image {shape[1]}x{shape[0]} JPEG ({len(images[0]) // 1024} KiB), class_type 1 "
        f"({len(CLASS_TYPES[1])} masks), replay engine, {args.workers} server workers, "
        f"{args.threads} client threads, {args.tasks} tasks per run"
    )

    # baselines: the same per-task work, in this process
    for data in images:
        pipeline(engine, data)  # warm the replay cache, as the server's will be
    alone = []
    for i in range(40):
        t0 = time.perf_counter()
        pipeline(engine, images[i % len(images)])
        alone.append(time.perf_counter() - t0)
    base_ms = statistics.median(alone) * 1e3
    decoded = decode_input_image(images[0])
    engine_alone = []
    for _ in range(40):
        t0 = time.perf_counter()
        engine.segment(decoded, classes=CLASS_TYPES[1], image_bytes=images[0])
        engine_alone.append(time.perf_counter() - t0)
    engine_ms = statistics.median(engine_alone) * 1e3
    base_rate = rate(lambda i: pipeline(engine, images[i % len(images)]), 200, args.workers)

    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["X-API-KEY"] = KEY
        return local.s

    http_requests = [0]
    count_lock = threading.Lock()

    def create(base: str, i: int, sync: int) -> dict:
        files = {"image_file": ("p.jpg", images[i % len(images)])}
        answer = session().post(base + TASKS, files=files, data={"sync": sync}, timeout=120)
        answer.raise_for_status()
        return answer.json()["data"]

    def async_task(base: str, i: int) -> None:
        task_id = create(base, i, 0)["task_id"]
        polls = 0
        while True:
            polls += 1
            data = session().get(f"{base}{TASKS}/{task_id}", timeout=60).json()["data"]
            if data["state"] == 1:
                break
            if data["state"] < 0:
                raise RuntimeError(data)
            time.sleep(0.01)
        with count_lock:
            http_requests[0] += 1 + polls

    def sync_task(base: str, i: int) -> None:
        if create(base, i, 1)["state"] != 1:
            raise RuntimeError("sync task did not finish within the sync timeout")

    with serve(replay_dir, args.workers) as base:
        for i in range(20):
            sync_task(base, i)  # warm up connections, threads and caches
        async_rate = rate(lambda i: async_task(base, i), args.tasks, args.threads)
        async_requests = http_requests[0] / (args.tasks / async_rate)
        sync_rate = rate(lambda i: sync_task(base, i), args.tasks, args.threads)
        latencies = []
        for i in range(100):
            t0 = time.perf_counter()
            sync_task(base, i)
            latencies.append(time.perf_counter() - t0)
    sync_ms = statistics.median(latencies) * 1e3

    print(f"baseline, in-process pipeline on {args.workers} threads: {base_rate:7.1f} tasks/s")
    print(
        f"async create+get, {args.threads} threads: {async_rate:7.1f} tasks/s "
        f"({async_requests:.0f} HTTP requests/s; {async_rate / base_rate:.2f}x the baseline)"
    )
    print(
        f"sync create,      {args.threads} threads: {sync_rate:7.1f} tasks/s "
        f"({sync_rate / base_rate:.2f}x the baseline)"
    )
    print(
        f"one sync request at a time: median {sync_ms:.1f} ms; the engine's own time "
        f"{engine_ms:.1f} ms, so the server adds {sync_ms - engine_ms:.1f} ms per request "
        f"({sync_ms / engine_ms:.1f}x the engine time)"
    )
    print(
        f"  of which decoding the upload and encoding the PNG masks (the pipeline alone: "
        f"{base_ms:.1f} ms) take {base_ms - engine_ms:.1f} ms and HTTP, parsing, the queue "
        f"and the store {sync_ms - base_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
