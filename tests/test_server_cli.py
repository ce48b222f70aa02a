"""``clothseg serve``: flags become settings, bad flags are clear errors, and a real run
serves the API until interrupted, with result-link secrets kept out of its log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import uvicorn
from _server_support import TASKS, body_of, record_photo, wait_until_serving
from click.testing import CliRunner

from clothseg_tools.server.cli import serve_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[uvicorn.Server]:
    """Replace the blocking serve loop with one that records the server it was given."""
    servers: list[uvicorn.Server] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: servers.append(self))
    monkeypatch.delenv("CLOTHSEG_SERVER_KEYS", raising=False)
    return servers


def test_flags_become_settings(tmp_path: Path, captured: list) -> None:
    args = [
        "--replay-dir", str(tmp_path), "--engine", "replay", "--api-key", "secret-one",
        "--port", "0", "--workers", "3", "--mask-format", "base64", "--result-ttl", "60",
        "--data-dir", str(tmp_path / "data"), "--test-controls", "--progression", "manual:2",
        "--fault", "status=503@0.25", "--fault", "latency=0.1;drop@0.5", "--fault-seed", "4",
        "--allow-private-urls", "--sync-timeout", "2",
    ]  # fmt: skip
    result = CliRunner().invoke(serve_command, args)
    assert result.exit_code == 0, result.output
    assert "engine replay, 3 worker(s), 1 API key(s)" in result.output
    assert "TEST CONTROLS ON" in result.output and "secret-one" not in result.output
    (server,) = captured
    settings = server.config.app.state.clothseg.settings
    assert settings.api_keys == ("secret-one",) and settings.workers == 3
    assert settings.mask_format == "base64" and settings.result_ttl == 60
    assert settings.data_dir == tmp_path / "data" and settings.allow_private_urls
    assert settings.progression == "manual:2" and settings.sync_timeout == 2
    assert settings.faults == {"status=503": 0.25, "latency=0.1;drop": 0.5}
    assert settings.engine_options == {"replay_dir": tmp_path}
    assert "secret-one" not in repr(settings)
    assert (tmp_path / "data" / "tasks.sqlite3").exists()


def test_keys_from_the_environment(tmp_path: Path, captured: list, monkeypatch) -> None:
    monkeypatch.setenv("CLOTHSEG_SERVER_KEYS", "k1, k2,,")
    args = ["--replay-dir", str(tmp_path), "--engine", "replay", "--api-key", "k0"]
    result = CliRunner().invoke(serve_command, args)
    assert result.exit_code == 0, result.output
    assert captured[0].config.app.state.clothseg.settings.api_keys == ("k0", "k1", "k2")


@pytest.mark.parametrize(
    ("extra", "code", "match"),
    [
        ([], 1, "at least one API key"),
        (["--api-key", "k", "--progression", "manual:1"], 1, "--test-controls"),
        (["--api-key", "k", "--test-controls", "--fault", "drop"], 2, "SPEC@PROBABILITY"),
        (["--api-key", "k", "--test-controls", "--fault", "drop@often"], 2, "not a probability"),
        (["--api-key", "k", "--test-controls", "--fault", "boom@0.1"], 1, "Unknown fault"),
        (["--api-key", "k", "--test-controls", "--fault", "drop@2"], 1, "between 0 and 1"),
        (["--api-key", "k", "--engine", "nope"], 1, "Unknown engine 'nope'"),
        (["--api-key", "k", "--engine-option", "novalue"], 2, "KEY=VALUE"),
        (["--api-key", "k", "--workers", "0"], 2, "--workers"),
    ],
)
def test_bad_flags(tmp_path: Path, captured: list, extra: list, code: int, match: str) -> None:
    args = ["--engine", "replay", "--replay-dir", str(tmp_path), *extra]
    if "--engine" in extra:
        args = args[2:]
    result = CliRunner().invoke(serve_command, args)
    assert result.exit_code == code, result.output
    assert match in result.output and "Traceback" not in result.output
    assert captured == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_until_interrupted(tmp_path: Path) -> None:
    image = record_photo(tmp_path, 0)
    port = free_port()
    command = [
        sys.executable, "-c", "from clothseg_tools.server.cli import serve_command as s; s()",
        "--port", str(port), "--engine", "replay", "--replay-dir", str(tmp_path),
        "--log-level", "info",
    ]  # fmt: skip
    env = {**os.environ, "CLOTHSEG_SERVER_KEYS": "env-key"}
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base)
        files = {"image_file": ("p.png", image)}
        answer = requests.post(
            base + TASKS,
            headers={"X-API-KEY": "env-key"},
            files=files,
            data={"sync": 1},
            timeout=30,
        )
        link = body_of(answer)["data"]["class_masks"]["tops"]
        assert requests.get(link, timeout=10).status_code == 200
        secret = link.split("sig=")[1]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    log = out.decode() + err.decode()
    assert "/results/" in log and "sig=<redacted>" in log
    assert secret not in log and "env-key" not in log


def test_serve_is_the_real_command_when_the_server_cli_is_imported_first() -> None:
    """server.cli imports the cli package; importing it first must not leave `clothseg
    serve` as the stand-in that says the server extra is missing."""
    code = (
        "import click, clothseg_tools.server.cli\n"
        "from clothseg_tools.cli import main\n"
        "cmd = main.get_command(click.Context(main), 'serve')\n"
        "print(cmd.callback.__module__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "clothseg_tools.server.cli"
