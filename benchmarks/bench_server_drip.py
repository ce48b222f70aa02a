"""Uploads while dripping ``image_url`` fetches are in flight (a bounded load script).

An origin on 127.0.0.1 answers every request with its headers at once and then its body
at 1 byte/s. ``--fetches`` create requests (45 by default) point ``image_url`` at it, so
they all stay in flight; meanwhile one client uploads a normal photo with ``sync=1``,
one request after another, and the answer times are measured.

Baseline: the same uploads to the same server with no fetch in flight, in the same run.
Printed: the median and the slowest upload time under load, and the median's ratio to
the baseline's. Before fetches had threads of their own, 45 such fetches held every
thread that also reads uploads, and a normal upload waited 27 s.

Everything runs on 127.0.0.1: the server as ``clothseg serve`` in a child process, the
origin and the clients here. Bounded in count (``--uploads`` uploads per phase) and time:
the origin is closed after the measured uploads, which ends every fetch at once, and the
server's fetch deadline (30 s) would end them anyway; the script then stops the server.
Run: ``.venv/bin/python benchmarks/bench_server_drip.py``.
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
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools.classes import CLASSES
from clothseg_tools.engines.replay import record

# the dripping origin is the one the attack tests use
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _drip_support import DripOrigin, png_answer

KEY = "bench-key"
TASKS = "/api/tasks/visual/clothing-segmentation"


def photo(shape: tuple[int, int], seed: int) -> bytes:
    """A JPEG with smooth gradients."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        img[..., c] = (127 + 100 * np.sin(xx / (37 + seed) + yy / 53 + c)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@contextlib.contextmanager
def serve(replay_dir: Path) -> Iterator[str]:
    """``clothseg serve`` in a child process, with its default limits."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "from clothseg_tools.server.cli import serve_command as s; s()"
    command = [
        sys.executable, "-c", code, "--port", str(port), "--engine", "replay",
        "--replay-dir", str(replay_dir), "--api-key", KEY, "--allow-private-urls",
        "--log-level", "error",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("clothseg serve did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload_times(base: str, data: bytes, n: int) -> list[float]:
    """Seconds each of ``n`` sync uploads took, one after another."""
    times = []
    with requests.Session() as session:
        session.headers["X-API-KEY"] = KEY
        for _ in range(n):
            t0 = time.perf_counter()
            answer = session.post(
                base + TASKS, files={"image_file": ("p.jpg", data)}, data={"sync": 1}, timeout=60
            )
            times.append(time.perf_counter() - t0)
            if answer.json()["data"]["state"] != 1:
                raise SystemExit(f"an upload failed: {answer.text[:200]}")
    return times


def in_flight(base: str) -> int:
    return int(requests.get(base + "/healthz", timeout=10).json()["fetches"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fetches", type=int, default=45, help="dripping fetches in flight")
    parser.add_argument("--uploads", type=int, default=20, help="uploads measured per phase")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 384), metavar=("W", "H"))
    args = parser.parse_args()
    shape = (args.size[1], args.size[0])
    replay_dir = Path(tempfile.mkdtemp(prefix="bench-drip-"))
    upload = photo(shape, 0)
    h, w = shape
    blank = MaskSet.from_stack(np.zeros((len(CLASSES), h, w), np.uint8), CLASSES)
    record(replay_dir, upload, blank)
    body = photo(shape, 1)
    answer = png_answer(body)
    # headers at once, then the body at 1 byte/s
    origin = DripOrigin(answer, 1.0, at_once=len(answer) - len(body))
    print(
        f"upload {w}x{h} JPEG ({len(upload) // 1024} KiB), sync=1, replay engine; "
        f"{args.fetches} image_url fetches of a {len(body) // 1024} KiB body at 1 byte/s"
    )
    with origin, serve(replay_dir) as base, ThreadPoolExecutor(args.fetches) as pool:
        upload_times(base, upload, 5)  # warm up
        idle = upload_times(base, upload, args.uploads)

        def drip(_: int) -> int:
            reply = requests.post(
                base + TASKS,
                headers={"X-API-KEY": KEY},
                data={"image_url": origin.url("/photo.png")},
                timeout=90,
            )
            return reply.status_code

        drips = [pool.submit(drip, i) for i in range(args.fetches)]
        deadline = time.monotonic() + 30
        while in_flight(base) < args.fetches and time.monotonic() < deadline:
            time.sleep(0.05)
        before = in_flight(base)
        loaded = upload_times(base, upload, args.uploads)
        after = in_flight(base)
        origin.close()  # ends every drip at once
        statuses = [d.result() for d in drips]
    idle_ms = statistics.median(idle) * 1e3
    loaded_ms = statistics.median(loaded) * 1e3
    print(f"baseline, no fetch in flight: median {idle_ms:.1f} ms over {len(idle)} uploads")
    print(
        f"with {before} dripping fetches in flight ({after} still at the end, "
        f"{origin.connections} origin connections): median {loaded_ms:.1f} ms, slowest "
        f"{max(loaded) * 1e3:.1f} ms ({loaded_ms / idle_ms:.2f}x the baseline median)"
    )
    print(f"dripping fetches answered after the origin closed: {sorted(set(statuses))}")


if __name__ == "__main__":
    main()
