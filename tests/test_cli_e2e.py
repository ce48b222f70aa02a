"""``clothseg`` in real processes: against the local server with injected faults, killed
with SIGKILL and resumed, interrupted with Ctrl-C, and the demo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import GOOD, make_inputs, masks_for

from clothseg_tools._io import encode_png
from clothseg_tools.batch import read_manifest
from clothseg_tools.cli import main
from clothseg_tools.engines.replay import record

KEY = "test-key"


def clothseg(*args: object, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the CLI in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "clothseg_tools.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def start(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "clothseg_tools.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def remote_env(base_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CLOTHSEG_API_KEY=KEY, CLOTHSEG_BASE_URL=base_url)
    return env


def local_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CLOTHSEG_API_KEY", None)
    return env


def manifest_lines(out: Path) -> int:
    try:
        return len((out / "manifest.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def tree(root: Path) -> dict[str, bytes]:
    """Every output file under ``root``, byte for byte (result.json included: the run's
    timings are in the manifest, not in the folder)."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.startswith("manifest"):
            continue
        files[rel] = path.read_bytes()
    return files


def many_photos(root: Path, rec: Path, n: int, shape: tuple[int, int] = (192, 256)) -> None:
    for i in range(n):
        img = np.random.default_rng(1000 + i).integers(0, 256, (*shape, 3), dtype=np.uint8)
        path = root / f"batch{i // 25}" / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(img))
        record(rec, path.read_bytes(), masks_for(img))


def test_entry_point_runs_in_its_own_process(tmp_path):
    exe = Path(sys.executable).with_name("clothseg")
    if not exe.exists():
        exe = Path(shutil.which("clothseg") or "clothseg")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "segment" in done.stdout
    done = subprocess.run(
        [str(exe), "segment", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: InputNotFoundError:") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_equals_an_uninterrupted_run(tmp_path):
    photos, rec = tmp_path / "photos", tmp_path / "rec"
    n = 80
    many_photos(photos, rec, n, shape=(144, 192))
    args = [
        "segment",
        photos,
        "--engine",
        "replay",
        "--replay-dir",
        rec,
        "-w",
        "2",
        "-q",
        "--output-type",
        "3",
    ]

    whole = clothseg(*args, "--out", tmp_path / "whole", env=local_env())
    assert whole.returncode == 0, whole.stderr

    killed = tmp_path / "killed"
    proc = start(*args, "--out", killed, env=local_env())
    deadline = time.monotonic() + 60
    while manifest_lines(killed) < n // 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()  # SIGKILL: no cleanup of any kind
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < manifest_lines(killed) < n, "the run must be killed halfway"

    resumed = clothseg(*args, "--out", killed, env=local_env())
    assert resumed.returncode == 0, resumed.stderr
    assert tree(killed) == tree(tmp_path / "whole")
    records = read_manifest(killed / "manifest.jsonl")
    assert len(records) == n and all(r["status"] == "done" for r in records.values())


@pytest.fixture
def server():
    """The local server package (needs the [server] extra)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import clothseg_tools.server

    return clothseg_tools.server


def test_against_the_local_server_with_faults_every_input_is_accounted_for(tmp_path, server):
    photos, rec = tmp_path / "photos", tmp_path / "rec"
    make_inputs(photos, record_dir=rec)
    good = {name.rsplit(".", 1)[0] for name in GOOD}
    out = tmp_path / "out"
    faults = {"status=429;retry_after=0.05": 0.25, "status=500": 0.2, "drop": 0.15}
    with server.run_in_thread(
        engine="replay",
        engine_options={"replay_dir": rec},
        api_keys=(KEY,),
        faults=faults,
        fault_seed=7,
        test_controls=True,
    ) as url:
        first = clothseg("segment", photos, "--out", out, "-w", "4", env=remote_env(url))
    assert first.returncode == 1
    assert "Traceback" not in first.stderr + first.stdout
    records = {r["key"]: r for r in read_manifest(out / "manifest.jsonl").values()}
    assert set(records) == good | {"corrupt", "too_wide", "huge"}
    for rec_ in records.values():
        assert rec_["status"] in ("done", "failed")
        if rec_["status"] == "failed":
            assert rec_["error"]["type"] and rec_["error"]["message"]
    assert records["huge"]["error"]["type"] == "FileTooLargeError"
    injected = [r for k, r in records.items() if k in good and r["status"] == "failed"]
    assert all(
        r["error"]["type"] in ("ServerError", "RateLimitError", "APIConnectionError")
        for r in injected
    )
    done_before = {k for k, r in records.items() if r["status"] == "done"}
    mtimes = {p: p.stat().st_mtime_ns for k in done_before for p in (out / k).rglob("*")}

    # the faults are gone: retrying the failures completes every good photo
    with server.run_in_thread(
        engine="replay", engine_options={"replay_dir": rec}, api_keys=(KEY,)
    ) as url:
        second = clothseg(
            "segment", photos, "--out", out, "-w", "4", "--retry-failed", env=remote_env(url)
        )
    assert second.returncode == 1  # the three bad files still fail, with their reasons
    records = {r["key"]: r for r in read_manifest(out / "manifest.jsonl").values()}
    assert {k for k, r in records.items() if r["status"] == "done"} == good
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # done outputs untouched

    # the service's masks are the engine's masks, byte for byte once saved
    local = tmp_path / "local"
    clothseg(
        "segment",
        photos,
        "--out",
        local,
        "--engine",
        "replay",
        "--replay-dir",
        rec,
        env=local_env(),
    )
    for key in good:
        for png in (local / key).glob("*.png"):
            assert (out / key / png.name).read_bytes() == png.read_bytes(), (key, png.name)


def test_ctrl_c_finishes_in_flight_images_and_says_how_to_resume(tmp_path, server):
    photos, rec = tmp_path / "photos", tmp_path / "rec"
    many_photos(photos, rec, 16, shape=(32, 32))
    out = tmp_path / "out"
    with server.run_in_thread(
        engine="replay",
        engine_options={"replay_dir": rec},
        api_keys=(KEY,),
        faults={"latency=0.15": 1.0},
        test_controls=True,
    ) as url:
        env = remote_env(url)
        proc = start("segment", photos, "--out", out, "-w", "2", env=env)
        deadline = time.monotonic() + 60
        while manifest_lines(out) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "Interrupted" in stderr and "Resume with:" in stderr
        assert "clothseg segment" in stderr and KEY not in stderr + stdout
        records = read_manifest(out / "manifest.jsonl")
        assert 2 <= len(records) < 16
        assert all(r["status"] == "done" for r in records.values())  # in-flight ones finished
        for r in records.values():
            assert (out / r["key"] / "result.json").is_file()
        resumed = clothseg("segment", photos, "--out", out, "-w", "2", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(read_manifest(out / "manifest.jsonl")) == 16


@pytest.mark.slow
def test_demo_runs_offline_and_writes_the_report(tmp_path):
    pytest.importorskip("mediapipe")
    from test_report import referenced_files

    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "-q"])
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - t0 < 60
    page = tmp_path / "demo" / "results" / "report.html"
    assert f"Open it in a browser: {page.resolve().as_uri()}" in result.output
    refs = referenced_files(page)
    assert len(refs) >= 15  # photo, overlay and cutout of five photos
    assert all(p.is_file() for p in refs)
    stats = json.loads((tmp_path / "demo" / "results" / "stats.json").read_text())
    assert stats["images"] == 5
    assert stats["summary"]["tops"]["present"] >= 2  # the astronaut's suit, at least twice
    # a second run resumes: nothing is segmented again
    again = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "-q"])
    assert again.exit_code == 0
    lines = (tmp_path / "demo" / "results" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 5
