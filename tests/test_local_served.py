"""The local engine behind the API-compatible server, reached through the client.

This is the offline path a user takes without a key: ``clothseg serve --engine local``
and ``Client(base_url=...)``. It checks the whole chain on a real photo.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from _server_support import wait_until_serving
from PIL import Image
from skimage import data

pytest.importorskip(
    "mediapipe", reason="the local engine needs mediapipe, published for Python 3.9 to 3.12"
)

import clothseg_tools as cst
from clothseg_tools.server import run_in_thread

KEY = "local-key"


@pytest.fixture(scope="module")
def astronaut_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def local_server():
    with run_in_thread(engine="local", api_keys=(KEY,), workers=1) as url:
        yield url


def test_client_segments_a_photo_with_every_class_and_parts(local_server, astronaut_png):
    with cst.Client(api_key=KEY, base_url=local_server) as client:
        result = client.segment(astronaut_png, class_type=4, output_type=3)
    ms = result.masks
    assert ms.classes == cst.CLASSES
    assert ms.shape == (512, 512)
    # consistency rules of the engine survive PNG transport
    person = np.zeros(ms.shape, bool)
    for name in cst.CLASSES:
        person |= ms[name] > 0
    assert (ms["face"] <= ms["head"]).all()
    assert (ms["tops"] <= ms["clothes"]).all()
    # the astronaut's face is found, roughly in the upper middle of the picture
    face = ms["face"] >= 128
    ys, xs = np.nonzero(face)
    assert face.sum() > 2000
    assert 100 < xs.mean() < 350 and 50 < ys.mean() < 250
    # tops are found and come back as per-garment parts from the ZIP
    assert (ms["tops"] >= 128).sum() > 10000
    assert any(name.startswith("tops") for name in result.parts)


def test_async_task_through_plain_http(local_server, astronaut_png):
    files = {"image_file": ("a.png", astronaut_png, "image/png")}
    r = requests.post(
        f"{local_server}/api/tasks/visual/clothing-segmentation",
        headers={"X-API-KEY": KEY},
        files=files,
        data={"sync": "0", "class_type": "3"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    task_id = r.json()["data"]["task_id"]
    deadline = time.monotonic() + 60
    while True:
        got = requests.get(
            f"{local_server}/api/tasks/visual/clothing-segmentation/{task_id}",
            headers={"X-API-KEY": KEY},
            timeout=30,
        ).json()
        if int(got["data"]["state"]) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            continue
        break
    assert int(got["status"]) == 200 and int(got["data"]["state"]) == 1
    assert sorted(got["data"]["class_masks"]) == sorted(cst.CLASS_TYPES[3])


def test_serve_command_starts_with_the_local_engine(tmp_path, astronaut_png):
    # `clothseg serve --engine local` as a user runs it, in its own process.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clothseg_tools.cli",
            "serve",
            "--engine",
            "local",
            "--port",
            str(port),
            "--api-key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, url)
        with cst.Client(api_key=KEY, base_url=url) as client:
            result = client.segment(astronaut_png, class_type=3)
        assert (result.masks["face"] >= 128).sum() > 2000
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "local" in out
