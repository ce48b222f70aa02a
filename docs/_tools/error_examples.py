"""Real error messages for the troubleshooting page, made by running the library.

Each example calls clothseg_tools the way a user would and catches what it raises:
input checks on bytes made here, a local server (``run_in_thread``, replay engine, test
controls) for the errors that come back from the service, a closed port for a refused
connection, and a child interpreter without mediapipe for a missing extra. The page
therefore shows the messages the installed version really produces, and the docs build
fails when an example stops raising the class it documents.

Run it directly to print every example::

    python docs/_tools/error_examples.py
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import re
import socket
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import requests

import clothseg_tools as cst
from clothseg_tools import inputs
from clothseg_tools._io import encode_png
from clothseg_tools.batch import discover_inputs
from clothseg_tools.engines.replay import ReplayEngine, record
from clothseg_tools.server import run_in_thread

API_KEY = "demo-key"
SHOWN_BASE_URL = "http://127.0.0.1:8000"
SHOWN_FILES_URL = "http://files.example"
SHOWN_RECORDS = "records/"

# a small photo the replay server has no record of, and one it has
PHOTO = encode_png(np.full((48, 32, 3), 180, np.uint8))
RECORDED = encode_png(np.full((48, 32, 3), 90, np.uint8))


class Context:
    """What the examples share: the server's URL, a file server, a records folder."""

    def __init__(self, base_url: str, files_url: str, records: Path) -> None:
        self.base_url = base_url
        self.files_url = files_url
        self.redirect_url = files_url + "/redirect"
        self.records = records
        # text an example's message shows differently (local ports, temporary paths)
        self.replacements: dict[str, str] = {
            base_url: SHOWN_BASE_URL,
            self.redirect_url: "http://api.example",
            files_url: SHOWN_FILES_URL,
            "'127.0.0.1'": f"'{SHOWN_FILES_URL.split('//')[1]}'",
            f"{records}/": SHOWN_RECORDS,
            str(records): SHOWN_RECORDS.rstrip("/"),
        }

    def client(
        self, *, key: str = API_KEY, headers: dict[str, str] | None = None, **options: Any
    ) -> cst.Client:
        """A client whose every request carries ``headers`` (test-control headers)."""
        session = requests.Session()
        session.headers.update(headers or {})
        return cst.Client(api_key=key, base_url=self.base_url, session=session, **options)


Example = Callable[[Context], Any]
EXAMPLES: dict[str, tuple[str, Example]] = {}


def example(name: str, code: str) -> Callable[[Example], Example]:
    """Register the example of error class ``name``; ``code`` is what the page shows."""

    def register(fn: Example) -> Example:
        EXAMPLES[name] = (code, fn)
        return fn

    return register


# -- input checks ---------------------------------------------------------------------


@example("InputError", 'client.create_task("https://example.com/photo.jpg")')
def _input_error(ctx: Context) -> None:
    ctx.client().create_task("https://example.com/photo.jpg")


@example("FileTooLargeError", 'check_image_bytes(png_of_21_mb, name="photo.png")')
def _file_too_large(ctx: Context) -> None:
    inputs.check_image_bytes(b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024), name="photo.png")


@example("UnsupportedFormatError", 'client.segment("cat.gif")')
def _unsupported(ctx: Context) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cat.gif"
        path.write_bytes(b"GIF89a" + bytes(40))
        ctx.client().segment(path)


@example("ImageTooLargeError", 'client.segment("panorama.png")  # 5000 x 1200 pixels')
def _too_many_pixels(ctx: Context) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panorama.png"
        path.write_bytes(encode_png(np.zeros((1200, 5000), np.uint8)))
        ctx.client().segment(path)


@example("ImageDecodeError", 'client.segment("download.png")  # an HTML error page')
def _undecodable(ctx: Context) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "download.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n<html>Access denied</html>")
        ctx.client().segment(path)


@example("NotAFileError", 'client.segment("shoot/pipe.jpg")  # a FIFO named like a photo')
def _not_a_file(ctx: Context) -> None:
    import os

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "shoot").mkdir()
        os.mkfifo(Path(tmp) / "shoot" / "pipe.jpg")
        here = os.getcwd()
        os.chdir(tmp)  # the message names the path as given: keep the temporary folder out
        try:
            ctx.client().segment("shoot/pipe.jpg")
        finally:
            os.chdir(here)


@example("InvalidRequestError", "client.segment(photo, output_type=4)")
def _invalid_request(ctx: Context) -> None:
    ctx.client().segment(PHOTO, output_type=4)


@example("ShapeMismatchError", "cutout(photo_480x640, mask_512x512)")
def _shape_mismatch(ctx: Context) -> None:
    cst.cutout(np.zeros((480, 640, 3), np.uint8), np.zeros((512, 512), np.uint8))


@example("KeypointError", 'tryon_mask(masks, "upper_body", preset="ootd")  # no keypoints')
def _keypoints(ctx: Context) -> None:
    masks = cst.MaskSet({"tops": np.ones((8, 6), bool)})
    cst.tryon_mask(masks, "upper_body", preset="ootd")


# -- masks and ZIPs -------------------------------------------------------------------


@example("MaskDecodeError", 'decode_mask("not an image", name="tops")')
def _mask_decode(ctx: Context) -> None:
    cst.decode_mask("not an image", name="tops")


@example("MaskZipError", 'read_mask_zip(b"<!doctype html>...")')
def _mask_zip(ctx: Context) -> None:
    cst.read_mask_zip(b"<!doctype html><title>Not found</title>")


@example("UnsafeZipError", 'read_mask_zip(zip_with_entry("../../etc/tops.png"))')
def _unsafe_zip(ctx: Context) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../etc/tops.png", encode_png(np.zeros((2, 2), np.uint8)))
    cst.read_mask_zip(buf.getvalue())


# -- label sets and parsing maps ---------------------------------------------------------


@example("LabelSetError", 'Parsing(lip_map, "atr")  # a LIP map read as ATR')
def _label_set(ctx: Context) -> None:
    lip_map = np.array([[0, 13], [5, 19]], np.uint8)
    cst.Parsing(lip_map, "atr")


@example("LabelSetMatchError", "match_labelset(config['id2label'])  # a model's own labels")
def _label_set_match(ctx: Context) -> None:
    cst.match_labelset({"0": "background", "1": "skin", "2": "shirt", "3": "trousers"})


# -- configuration and engines ----------------------------------------------------------


@example("ConfigurationError", 'get_engine("mediapipe")')
def _configuration(ctx: Context) -> None:
    cst.get_engine("mediapipe")


@example("EngineUnavailableError", 'get_engine("local")  # without the [local] extra')
def _engine_unavailable(ctx: Context) -> None:
    # A child interpreter in which mediapipe cannot be imported, as on an install
    # without the extra; this process keeps its own modules untouched.
    script = (
        "import sys; sys.modules['mediapipe'] = None\n"
        "import clothseg_tools as cst\n"
        "try:\n    cst.get_engine('local')\n"
        "except cst.ConfigurationError as exc:\n"
        "    print(type(exc).__name__); print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    name, _, message = out.partition("\n")
    error_type = getattr(cst.errors, name.strip(), RuntimeError)
    raise error_type(message.strip())


@example("OptionalDependencyError", 'export_hf("results/", "dataset/")  # without pyarrow')
def _optional_dependency(ctx: Context) -> None:
    # A child interpreter in which pyarrow cannot be imported, as on an install
    # without the [hf] extra; this process keeps its own modules untouched.
    script = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "import clothseg_tools as cst\n"
        "try:\n    cst.export_hf([], 'dataset')\n"
        "except cst.ConfigurationError as exc:\n"
        "    print(type(exc).__name__); print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    name, _, message = out.partition("\n")
    error_type = getattr(cst.errors, name.strip(), RuntimeError)
    raise error_type(message.strip())


@example("LabelFormatError", 'list(read_yolo("records/yolo"))  # line 2 holds a box, not a polygon')
def _label_format(ctx: Context) -> None:
    from PIL import Image

    root = ctx.records / "yolo"
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "a.png")
    (root / "labels" / "a.txt").write_text("4 0.1 0.1 0.9 0.1 0.5 0.9\n4 0.5 0.5 0.2 0.2\n")
    list(cst.read_yolo(root))


@example("ModelError", 'get_engine("onnx", model="models/segformer_b2_clothes/")')
def _model_error(ctx: Context) -> None:
    cst.get_engine("onnx", model="models/segformer_b2_clothes/")


@example("InputNotFoundError", 'discover_inputs(["photos/missing.jpg"])  # clothseg segment')
def _input_not_found(ctx: Context) -> None:
    discover_inputs(["photos/missing.jpg"])


@example("NoRecordError", 'ReplayEngine("records/").segment(photo, classes=["tops"], ...)')
def _no_record(ctx: Context) -> None:
    ReplayEngine(ctx.records).segment(
        np.zeros((48, 32, 3), np.uint8), classes=["tops"], image_bytes=PHOTO
    )


@example("EngineError", 'ReplayEngine("records/").segment(other_size_photo, ...)')
def _engine_error(ctx: Context) -> None:
    # the record was made for a 48 x 32 photo; these bytes come with a 24 x 16 one
    ReplayEngine(ctx.records).segment(
        np.zeros((24, 16, 3), np.uint8), classes=["tops"], image_bytes=RECORDED
    )


# -- the service ------------------------------------------------------------------------


@example("APIConnectionError", 'Client(base_url="http://127.0.0.1:8000").segment(photo)')
def _connection(ctx: Context) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx.replacements[f"127.0.0.1:{port}"] = "127.0.0.1:8000"
    cst.Client(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0).create_task(
        PHOTO
    )


@example("APITimeoutError", "Client(timeout=0.5).segment(photo)  # a slow service")
def _timeout(ctx: Context) -> None:
    client = ctx.client(headers={"X-Clothseg-Fault": "latency=1.5"}, timeout=0.5, max_retries=0)
    client.create_task(PHOTO)


@example("APIError", "client.fetch(client.create_task(photo))  # not finished yet")
def _api_error(ctx: Context) -> None:
    client = ctx.client(headers={"X-Clothseg-Progression": "manual:1000"})
    client.fetch(client.create_task(RECORDED))


@example("APIStatusError", 'Client(base_url="http://api.example").segment(photo)')
def _api_status(ctx: Context) -> None:
    # an http:// address the service redirects to https://
    cst.Client(api_key=API_KEY, base_url=ctx.redirect_url, max_retries=0).create_task(PHOTO)


@example("BadRequestError", f'client.segment("{SHOWN_FILES_URL}/moved.jpg")')
def _bad_request(ctx: Context) -> None:
    ctx.client().create_task(image_url=f"{ctx.files_url}/moved.jpg")


@example("AuthenticationError", 'Client(api_key="wrong-key").segment(photo)')
def _authentication(ctx: Context) -> None:
    ctx.client(key="wrong-key").create_task(PHOTO)


@example("TaskNotFoundError", 'client.get_task("3f0c9a5e-...")  # over an hour old')
def _task_not_found(ctx: Context) -> None:
    ctx.client().get_task("3f0c9a5e-0000-4000-8000-000000000000")


@example("APIInputError", f'client.segment("{SHOWN_FILES_URL}/cat.gif")')
def _api_input(ctx: Context) -> None:
    ctx.client().create_task(image_url=f"{ctx.files_url}/cat.gif")


@example("RateLimitError", "client.segment(photo)  # too many requests at once")
def _rate_limit(ctx: Context) -> None:
    fault = "status=429;retry_after=2;message=<the service's message>"
    ctx.client(headers={"X-Clothseg-Fault": fault}, max_retries=0).create_task(PHOTO)


@example("ServerError", "client.segment(photo)  # the service failed")
def _server_error(ctx: Context) -> None:
    fault = "status=503;message=<the service's message>"
    ctx.client(headers={"X-Clothseg-Fault": fault}, max_retries=0).create_task(PHOTO)


@example("TaskFailedError", "client.segment(photo)  # the engine could not segment it")
def _task_failed(ctx: Context) -> None:
    ctx.client().segment(PHOTO)


@example("WaitTimeoutError", "client.wait(task, timeout=0.5)")
def _wait_timeout(ctx: Context) -> None:
    client = ctx.client(headers={"X-Clothseg-Progression": "manual:1000"})
    client.wait(client.create_task(RECORDED), timeout=0.5)


@example("ResultExpiredError", "client.fetch(task)  # links over an hour old")
def _result_expired(ctx: Context) -> None:
    ctx.client(headers={"X-Clothseg-Fault": "expire"}).segment(RECORDED)


@contextlib.contextmanager
def _file_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (an ``image_url`` the server can fetch);
    POST requests are redirected, as an address that moved to https would."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # what an http:// address that moved to https does
            self.send_response(301)
            self.send_header("Location", "https://api.example" + self.path.replace("/redirect", ""))
            self.send_header("Content-Length", "0")
            self.end_headers()

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def context() -> Iterator[Context]:
    """A running server (replay engine, test controls) and a file server."""
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "records"
        record(records, RECORDED, {"tops": np.full((48, 32), 255, np.uint8)})
        files = Path(tmp) / "files"
        files.mkdir()
        (files / "cat.gif").write_bytes(b"GIF89a" + bytes(40))
        with (
            _file_server(files) as files_url,
            run_in_thread(
                engine="replay",
                engine_options={"replay_dir": records},
                api_keys=(API_KEY,),
                test_controls=True,
                # the file server standing in for the web is on 127.0.0.1
                allow_private_urls=True,
            ) as base_url,
        ):
            yield Context(base_url, files_url, records)


def _shown(message: str, ctx: Context) -> str:
    """The message as the page shows it: local addresses and temporary paths replaced."""
    for text, shown in ctx.replacements.items():
        message = message.replace(text, shown)
    return re.sub(r"\s+", " ", message).strip()


def run_example(name: str, ctx: Context) -> tuple[str, str]:
    """Run the example of ``name``; return ``(code, "ErrorType: message")``.

    Raises
    ------
    RuntimeError
        The example raised nothing, or an error of another class than ``name``.
    """
    code, fn = EXAMPLES[name]
    try:
        fn(ctx)
    except Exception as exc:
        if type(exc).__name__ != name:
            raise RuntimeError(
                f"The troubleshooting example of {name} raised {type(exc).__name__}: {exc}"
            ) from exc
        return code, f"{name}: {_shown(str(exc), ctx)}"
    raise RuntimeError(f"The troubleshooting example of {name} raised nothing.")


def collect(names: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """Run the examples (all, or ``names``): ``{class name: (code, message line)}``."""
    with context() as ctx:
        return {name: run_example(name, ctx) for name in (names or list(EXAMPLES))}


if __name__ == "__main__":
    for error, (code, line) in collect().items():
        print(f"{error}\n    >>> {code}\n    {line}\n")
