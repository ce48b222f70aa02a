"""The client end to end against the project's own server (replay engine) on 127.0.0.1:
sync and async, every output_type and class_type, url and file sources, both mask
formats, server-side faults, and no duplicate tasks."""

from __future__ import annotations

import functools
import io
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from _http_support import QuietHTTPServer
from PIL import Image

from clothseg_tools import MaskSet
from clothseg_tools.api import Client, SegmentationResult, _retry
from clothseg_tools.classes import CLASS_TYPES, CLASSES
from clothseg_tools.errors import (
    APIConnectionError,
    AuthenticationError,
    MaskDecodeError,
    MaskZipError,
    RateLimitError,
    ResultExpiredError,
    TaskFailedError,
    TaskNotFoundError,
)
from clothseg_tools.inputs import load_input

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from clothseg_tools.engines.replay import record
from clothseg_tools.server import run_in_thread

KEY = "server-test-key-5f1c"
H, W = 24, 32
FAULT = "X-Clothseg-Fault"
PROGRESSION = "X-Clothseg-Progression"


def photo(seed: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def recorded_masks(seed: int) -> MaskSet:
    """A distinct soft mask per class, so a mix-up of classes cannot pass."""
    stack = np.zeros((len(CLASSES), H, W), np.uint8)
    for i in range(len(CLASSES)):
        stack[i, (i + seed) % H, :] = 255
        stack[i, :, (3 * i + seed) % W] = 100 + i
    return MaskSet.from_stack(stack, CLASSES)


def recorded_parts(seed: int) -> MaskSet:
    parts = {}
    for name, row in (("tops_0", 2), ("tops_1", 9), ("dress_0", 15)):
        m = np.zeros((H, W), np.uint8)
        m[row : row + 4, seed % 8 : seed % 8 + 10] = 255
        parts[name] = m
    return MaskSet(parts)


class Images:
    """The recorded inputs: photos on disk (also served over HTTP) and an array."""

    def __init__(self, root: Path) -> None:
        self.replay = root / "replay"
        self.files = root / "files"
        self.files.mkdir()
        self.paths: list[Path] = []
        for seed in range(12):
            fmt = "PNG" if seed % 4 == 3 else "JPEG"
            data = photo(seed, fmt)
            path = self.files / f"p{seed}.{fmt.lower()}"
            path.write_bytes(data)
            self.paths.append(path)
            record(self.replay, data, recorded_masks(seed), recorded_parts(seed))
        # an array is uploaded as the PNG load_input makes of it: record those bytes
        self.array = np.random.default_rng(99).integers(0, 255, (H, W, 3), dtype=np.uint8)
        record(self.replay, load_input(self.array)[0], recorded_masks(99), recorded_parts(99))
        self.unknown = self.files / "unknown.jpg"
        self.unknown.write_bytes(photo(1234))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def file_host(images: Images) -> Iterator[str]:
    """A plain HTTP server for image_url sources."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(images.files))
    httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", params=["url", "base64"])
def server(request: pytest.FixtureRequest, images: Images) -> Iterator[str]:
    with run_in_thread(
        engine="replay",
        engine_options={"replay_dir": str(images.replay)},
        api_keys=(KEY,),
        mask_format=request.param,
        allow_private_urls=True,
        test_controls=True,
        workers=2,
    ) as url:
        yield url


@pytest.fixture
def fast_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Keep the retry and poll schedule, but sleep it 50x faster."""
    asked: list[float] = []

    def short(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(seconds / 50)

    monkeypatch.setattr(_retry, "sleep", short)
    return asked


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(api_key=KEY, base_url=server, timeout=(5.0, 30.0)) as c:
        yield c


def task_count(server: str) -> int:
    answer = requests.get(f"{server}/_clothseg/tasks", timeout=10).json()
    return int(answer["data"]["created"])


def check_result(
    result: SegmentationResult, seed: int, *, class_type: int = 1, output_type: int = 1
) -> None:
    expected = recorded_masks(seed)
    if output_type in (1, 3):
        assert set(result.masks.classes) == set(CLASS_TYPES[class_type])
        for name in result.masks.classes:
            np.testing.assert_array_equal(result.masks[name], expected[name], err_msg=name)
    else:
        assert len(result.masks) == 0
    assert result.masks.shape == (H, W)
    assert result.parts is not None and result.parts.shape == (H, W)
    if output_type in (2, 3):
        parts = recorded_parts(seed)
        assert sorted(result.parts.classes) == sorted(parts.classes)
        for name in parts.classes:
            np.testing.assert_array_equal(result.parts[name], parts[name], err_msg=name)
    else:
        assert len(result.parts) == 0
    task = result.task
    assert task is not None and task.is_done and task.task_id
    assert task.created_at is not None and task.completed_at is not None
    assert task.completed_at >= task.created_at


@pytest.mark.parametrize("sync", [True, False])
@pytest.mark.parametrize("output_type", [1, 2, 3])
def test_sync_and_async_every_output_type(
    client: Client, images: Images, fast_sleeps: list[float], sync: bool, output_type: int
) -> None:
    result = client.segment(images.paths[0], sync=sync, output_type=output_type)
    check_result(result, 0, output_type=output_type)
    assert result.options == {
        "class_type": 1,
        "output_type": output_type,
        "detail_mode": 1,
        "quality": 1,
        "sync": sync,
    }


@pytest.mark.parametrize("class_type", [1, 2, 3, 4])
def test_every_class_type(client: Client, images: Images, class_type: int) -> None:
    result = client.segment(images.paths[1], class_type=class_type, detail_mode=2, quality=2)
    check_result(result, 1, class_type=class_type)


def test_url_source(client: Client, images: Images, file_host: str) -> None:
    result = client.segment(f"{file_host}/p2.jpeg?cache=no", output_type=3)
    check_result(result, 2, output_type=3)
    assert result.source == f"{file_host}/p2.jpeg"


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "file", "pil", "array"])
def test_file_sources(client: Client, images: Images, kind: str) -> None:
    path = images.paths[3]  # a PNG: PIL images re-encode to the same pixels
    make: dict[str, Any] = {
        "path": lambda: path,
        "str": lambda: str(path),
        "bytes": path.read_bytes,
        "file": lambda: open(path, "rb"),  # noqa: SIM115 - closed below
        "pil": lambda: Image.open(path),
        "array": lambda: images.array,
    }
    source = make[kind]()
    try:
        if kind == "pil":
            # a PIL image is re-encoded, so its bytes differ from the file's: record them
            record(images.replay, load_input(source)[0], recorded_masks(3), recorded_parts(3))
        result = client.segment(source, output_type=3)
    finally:
        if hasattr(source, "close"):
            source.close()
    check_result(result, 99 if kind == "array" else 3, output_type=3)


def test_async_task_polled_with_progress(
    client: Client, images: Images, fast_sleeps: list[float]
) -> None:
    client.session.headers[PROGRESSION] = "manual:3"
    seen: list[tuple[int | None, int | None]] = []
    task = client.create_task(image=images.paths[4])
    assert task.state is None
    done = client.wait(task, progress=lambda t: seen.append((t.state, t.progress)))
    assert done.is_done and done.task_id == task.task_id
    # three reads of the finished task show it processing, the fourth shows it done; a
    # slow engine may add reads before those
    assert len(seen) >= 4 and seen[-1] == (1, 100)
    assert all(state is not None and state > 1 for state, _ in seen[:-1])
    assert fast_sleeps[:3] == [0.5, 0.75, 1.125]
    result = client.fetch(done)
    check_result(result, 4)


def test_sync_answer_still_processing_falls_back_to_wait(
    client: Client, images: Images, fast_sleeps: list[float]
) -> None:
    client.session.headers[PROGRESSION] = "manual:2"
    result = client.segment(images.paths[5])
    check_result(result, 5)
    assert result.timings["wait"] > 0


def test_result_saved_and_loaded(client: Client, images: Images, tmp_path: Path) -> None:
    result = client.segment(images.paths[6], output_type=3, class_type=4)
    loaded = SegmentationResult.load(result.save(tmp_path / "r"))
    assert loaded.masks == result.masks and loaded.parts == result.parts
    assert loaded.task is not None and loaded.task.task_id == result.task.task_id  # type: ignore[union-attr]
    assert "sig=" not in (tmp_path / "r" / "result.json").read_text()


def test_wrong_key(server: str, images: Images) -> None:
    with Client(api_key="not-the-key", base_url=server) as c, pytest.raises(AuthenticationError):
        c.segment(images.paths[0])


@pytest.mark.parametrize("sync", [True, False])
def test_image_without_record_fails_the_task(
    client: Client, images: Images, fast_sleeps: list[float], sync: bool
) -> None:
    with pytest.raises(TaskFailedError) as info:
        client.segment(images.unknown, sync=sync)
    assert (info.value.state, info.value.status) == (-1, 422)
    assert info.value.task_id


def test_unknown_task(client: Client) -> None:
    with pytest.raises(TaskNotFoundError):
        client.get_task("no-such-task")


def test_expired_result(client: Client, images: Images, server: str) -> None:
    client.session.headers[FAULT] = "expire"
    task = client.create_task(image=images.paths[7], sync=True)
    assert task.is_done
    del client.session.headers[FAULT]
    if task.class_masks and next(iter(task.class_masks.values())).startswith("http"):
        with pytest.raises(ResultExpiredError):
            client.fetch(task)
    with pytest.raises(TaskNotFoundError):
        client.get_task(task.task_id)


def test_corrupt_masks_are_reported(client: Client, images: Images) -> None:
    client.session.headers[FAULT] = "corrupt_mask"
    with pytest.raises((MaskDecodeError, MaskZipError)):
        client.segment(images.paths[8], output_type=3)


def test_rate_limited_create_is_retried_without_duplicates(
    client: Client, images: Images, server: str, fast_sleeps: list[float]
) -> None:
    before = task_count(server)
    client.session.headers[FAULT] = "status=429;retry_after=2"
    with pytest.raises(RateLimitError):  # every attempt is refused
        client.create_task(image=images.paths[9])
    assert fast_sleeps.count(2.0) == client.max_retries
    del client.session.headers[FAULT]
    assert task_count(server) == before  # the refused creates made no task


def test_create_dropped_after_acting_is_not_repeated(
    client: Client, images: Images, server: str
) -> None:
    before = task_count(server)
    client.session.headers[FAULT] = "drop=after"
    with pytest.raises(APIConnectionError):
        client.create_task(image=images.paths[9])
    assert task_count(server) == before + 1  # created once, never twice


def test_segment_many_against_the_server(
    client: Client, images: Images, server: str, fast_sleeps: list[float]
) -> None:
    inputs = [*images.paths, images.unknown, images.array]
    before = task_count(server)
    outcomes = list(client.segment_many(inputs, workers=4, output_type=3, sync=False))
    assert sorted(o.index for o in outcomes) == list(range(len(inputs)))
    by_index = {o.index: o for o in outcomes}
    for i in range(len(images.paths)):
        result = by_index[i].result
        assert by_index[i].ok and result is not None, by_index[i].error
        check_result(result, i, output_type=3)
    failed = by_index[len(images.paths)]
    assert isinstance(failed.error, TaskFailedError) and failed.source == str(images.unknown)
    assert by_index[len(inputs) - 1].source == f"<array #{len(inputs) - 1}>"
    assert task_count(server) == before + len(inputs)


@pytest.fixture(scope="module")
def flaky_server(images: Images) -> Iterator[str]:
    """A server that refuses a fifth of the API requests with 503 or 429, at random."""
    with run_in_thread(
        engine="replay",
        engine_options={"replay_dir": str(images.replay)},
        api_keys=(KEY,),
        test_controls=True,
        faults={"status=503": 0.1, "status=429;retry_after=1": 0.1},
        fault_seed=7,
        workers=2,
    ) as url:
        yield url


def test_batch_survives_random_503_and_429_without_duplicates(
    flaky_server: str, images: Images, fast_sleeps: list[float]
) -> None:
    before = task_count(flaky_server)
    with Client(api_key=KEY, base_url=flaky_server, max_retries=6) as c:
        outcomes = list(c.segment_many(images.paths * 2, workers=4, sync=False))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert task_count(flaky_server) == before + 2 * len(images.paths)
    assert fast_sleeps  # the faults did happen and were retried
