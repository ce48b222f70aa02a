"""What the server tests share: fixtures, recorded images, small test engines, HTTP calls.

Every request goes over real HTTP to a server started on 127.0.0.1 by ``run_in_thread``.
A test module declares its fixtures in one line each::

    replay_dir = replay_fixture(seeds=4)
    server = server_fixture(test_controls=True)
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import requests
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools.classes import CLASSES
from clothseg_tools.contract import ENDPOINT, KEY_HEADER
from clothseg_tools.engines import register_engine
from clothseg_tools.engines.base import Engine, EngineOutput
from clothseg_tools.engines.replay import record
from clothseg_tools.errors import EngineError
from clothseg_tools.server import run_in_thread

KEY = "test-key"
AUTH = {KEY_HEADER: KEY}
TASKS = ENDPOINT
H, W = 30, 40
TASK_KEYS = {
    "task_id",
    "created_at",
    "processed_at",
    "completed_at",
    "class_masks",
    "output_type",
    "progress",
    "state",
}


def photo(seed: int, *, fmt: str = "PNG", size: tuple[int, int] = (H, W)) -> bytes:
    """Encoded noise image; each seed gives different bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def masks_for(seed: int, shape: tuple[int, int] = (H, W)) -> MaskSet:
    """A different soft mask per class, so a mix-up of classes cannot pass."""
    h, w = shape
    stack = np.zeros((len(CLASSES), h, w), np.uint8)
    for i in range(len(CLASSES)):
        stack[i, (i + seed) % h, :] = 255
        stack[i, :, (3 * i + seed) % w] = 100 + i
    return MaskSet.from_stack(stack, CLASSES)


def parts_for(seed: int, shape: tuple[int, int] = (H, W)) -> dict[str, npt.NDArray[np.uint8]]:
    """Per-garment parts, including one that is not a garment (it stays out of the ZIP)."""
    h, w = shape
    parts = {}
    for name, row in (("tops_0", 2), ("tops_1", 9), ("dress_0", 15), ("bag_0", 20)):
        m = np.zeros((h, w), np.uint8)
        m[row : row + 4, seed % 8 : seed % 8 + 10] = 255
        parts[name] = m
    return parts


def record_photo(replay_dir: Path, seed: int, **kwargs: Any) -> bytes:
    """Record masks and parts for ``photo(seed)``; return the photo's bytes."""
    data = photo(seed, **kwargs)
    shape = kwargs.get("size", (H, W))
    record(replay_dir, data, masks_for(seed, shape), parts_for(seed, shape))
    return data


def replay_fixture(seeds: int = 1) -> Any:
    """A module-scoped fixture: a replay folder with the records of ``photo(0..seeds-1)``."""

    @pytest.fixture(scope="module")
    def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp("replay")
        for seed in range(seeds):
            record_photo(folder, seed)
        return folder

    return replay_dir


def server_fixture(**settings: Any) -> Any:
    """A module-scoped fixture: the base URL of a server replaying the module's
    ``replay_dir``, started with ``settings`` (see ``ServerSettings``) and stopped after
    the module's last test."""

    @pytest.fixture(scope="module")
    def server(replay_dir: Path) -> Iterator[str]:
        with run_in_thread(engine_options={"replay_dir": replay_dir}, **settings) as url:
            yield url

    return server


def png_array(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode a PNG, checking it is 8-bit grayscale."""
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.mode == "L", (img.format, img.mode)
        return np.asarray(img).copy()


def create(
    base: str,
    image: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    filename: str = "photo.png",
    timeout: float = 30,
    **fields: Any,
) -> requests.Response:
    """POST a create request (multipart when ``image`` is given, else form fields)."""
    files = {"image_file": (filename, image, "application/octet-stream")} if image else None
    data = {k: str(v) for k, v in fields.items()}
    return requests.post(
        base + TASKS,
        headers={**AUTH, **(headers or {})},
        files=files,
        data=data,
        timeout=timeout,
    )


def query(base: str, task_id: str, *, headers: dict[str, str] | None = None) -> requests.Response:
    """GET the task."""
    return requests.get(f"{base}{TASKS}/{task_id}", headers={**AUTH, **(headers or {})}, timeout=30)


def body_of(response: requests.Response) -> dict[str, Any]:
    """The JSON body, after checking the HTTP status and the body's status agree."""
    body = response.json()
    assert set(body) == {"status", "message", "data"}, body
    assert body["status"] == response.status_code, (response.status_code, body)
    assert isinstance(body["message"], str) and body["message"]
    return body


def wait_done(base: str, task_id: str, *, timeout: float = 30) -> dict[str, Any]:
    """Poll until the task is finished; return the final body."""
    deadline = time.monotonic() + timeout
    while True:
        body = query(base, task_id).json()
        state = (body.get("data") or {}).get("state")
        if state is not None and state <= 1:
            return body
        assert time.monotonic() < deadline, f"task {task_id} still processing: {body}"
        time.sleep(0.02)


class PatternEngine(Engine):
    """A tiny engine: every requested class gets a mask made from the image's shape."""

    name = "test-pattern"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        masks = {c: np.full((h, w), 17 * (i + 1), np.uint8) for i, c in enumerate(classes)}
        return EngineOutput(MaskSet(masks, shape=(h, w)), {})


class EchoEngine(Engine):
    """Writes the options it was called with into its masks: 10 * detail_mode + quality."""

    name = "test-echo"

    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        value = np.full(image.shape[:2], 10 * detail_mode + quality, np.uint8)
        return EngineOutput(MaskSet({c: value for c in classes}), {})


class GateEngine(PatternEngine):
    """A PatternEngine that blocks until ``GateEngine.gate`` is set (to see tasks mid-run)."""

    name = "test-gate"
    gate = threading.Event()
    started = threading.Semaphore(0)

    def _segment(self, image: npt.NDArray[np.uint8], **kwargs: Any) -> EngineOutput:
        GateEngine.started.release()
        assert GateEngine.gate.wait(30), "the test never opened the gate"
        return super()._segment(image, **kwargs)


@contextlib.contextmanager
def gate_closed() -> Iterator[None]:
    """GateEngine blocks inside the block; the gate opens on the way out (even on failure),
    so a server shutting down never waits for a blocked engine."""
    GateEngine.gate.clear()
    GateEngine.started = threading.Semaphore(0)
    try:
        yield
    finally:
        GateEngine.gate.set()


class BrokenEngine(Engine):
    """Fails: with an EngineError for images whose first pixel is black, else a crash."""

    name = "test-broken"

    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        if not image[0, 0].any():
            raise EngineError("no person found in the image")
        raise ZeroDivisionError("division by zero")


register_engine("test-pattern", PatternEngine)
register_engine("test-gate", GateEngine)
register_engine("test-echo", EchoEngine)
register_engine("test-broken", BrokenEngine)


def solid_png(value: int, size: tuple[int, int] = (8, 8)) -> bytes:
    """An RGB PNG of one grey level."""
    buf = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def concurrently(fn: Any, items: Sequence[Any], threads: int) -> list[Any]:
    """Run ``fn`` over ``items`` on ``threads`` threads; results in item order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def wait_until_serving(proc: subprocess.Popen[Any], base: str, *, timeout: float = 60) -> None:
    """Wait for a ``clothseg serve`` started as ``proc`` to answer ``base/healthz``; fail
    with its output if it exits first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the server did not start within {timeout} s"
        time.sleep(0.1)
