"""``clothseg serve``'s settings travel as one object: every flag is a field of
ServerSettings or ServeOptions (its default and bounds written once), and the command
reads its flags into one ServeOptions, the way the settings are built from Python."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import click
import pytest
import uvicorn
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from clothseg_tools.contract import SERVER_KEYS_ENV
from clothseg_tools.errors import ConfigurationError
from clothseg_tools.server import ServeOptions, ServerSettings
from clothseg_tools.server.cli import serve_command, serve_options
from clothseg_tools.server.settings import Flag, field_default, flagged_fields


def flags_of(args: list[str]) -> dict[str, Any]:
    """The values click parses from ``args`` (callbacks included), without running."""
    with serve_command.make_context("serve", args) as ctx:
        return dict(ctx.params)


def param(flag: str) -> click.Option:
    (found,) = [p for p in serve_command.params if flag in getattr(p, "opts", ())]
    assert isinstance(found, click.Option)
    return found


def flag_name(field: dataclasses.Field[Any], flag: Flag) -> str:
    return "--" + (flag.name or field.name).replace("_", "-")


FLAGGED = [
    pytest.param(cls, field, flag, id=field.name)
    for cls in (ServerSettings, ServeOptions)
    for field, flag in flagged_fields(cls)
]


@pytest.mark.parametrize(("cls", "field", "flag"), FLAGGED)
def test_every_flagged_field_is_a_flag_with_the_fields_default(cls, field, flag) -> None:
    option = param(flag_name(field, flag))
    assert option.name == field.name
    assert option.help == flag.help
    if flag.parse is None:  # a repeatable flag starts empty; its field's default is {}
        assert option.default == field_default(field)
    # the defaults the command starts from are those of the objects built from Python
    built = serve_options({"api_keys": ("k",)})
    owner = built.settings if cls is ServerSettings else built
    assert getattr(owner, field.name) == field_default(field)


def test_flags_keep_their_order_and_the_shared_ones() -> None:
    names = [p.name for p in serve_command.params]
    assert names[:3] == ["host", "port", "engine"]
    assert names[-1] == "log_level"
    settings_names = [f.name for f, flag in flagged_fields(ServerSettings) if not flag.shared]
    positions = [names.index(n) for n in settings_names]
    assert positions == sorted(positions)
    # --workers is the shared flag (-w), with the server's help and default
    workers = param("--workers")
    assert "-w" in workers.opts and workers.default == ServerSettings(api_keys=("k",)).workers
    assert workers.help == "Engine worker threads."


def test_flags_and_keywords_give_the_same_options(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(SERVER_KEYS_ENV, "k1, k2,,")
    args = [
        "--host", "0.0.0.0", "--port", "0", "--engine", "replay", "--replay-dir",
        str(tmp_path), "--engine-option", "seed=3", "--api-key", "k0", "--workers", "3",
        "--max-queue", "7", "--sync-timeout", "2", "--result-ttl", "60", "--mask-format",
        "base64", "--data-dir", str(tmp_path / "data"), "--public-url", "http://x.test",
        "--allow-private-urls", "--fetch-timeout", "1.5", "--fetch-deadline", "4",
        "--fetch-workers", "2", "--max-fetch-queue", "0", "--header-timeout", "3",
        "--body-timeout", "9", "--max-header-bytes", "2048", "--test-controls",
        "--progression", "manual:2", "--fault", "status=503@0.25", "--fault-seed", "4",
        "--log-level", "debug",
    ]  # fmt: skip
    options = serve_options(flags_of(args))
    expected = ServeOptions(
        ServerSettings.from_options(
            api_keys=("k0",),
            engine="replay",
            engine_options={"seed": 3, "replay_dir": tmp_path},
            workers=3,
            max_queue=7,
            sync_timeout=2.0,
            result_ttl=60.0,
            mask_format="base64",
            data_dir=tmp_path / "data",
            public_url="http://x.test",
            allow_private_urls=True,
            fetch_timeout=1.5,
            fetch_deadline=4.0,
            fetch_workers=2,
            max_fetch_queue=0,
            header_timeout=3.0,
            body_timeout=9.0,
            max_header_bytes=2048,
            test_controls=True,
            progression="manual:2",
            faults={"status=503": 0.25},
            fault_seed=4,
        ),
        host="0.0.0.0",
        port=0,
        log_level="debug",
    )
    assert options == expected
    assert options.settings.api_keys == ("k0", "k1", "k2")  # the environment's keys too


def test_no_flags_give_the_default_options(monkeypatch) -> None:
    monkeypatch.setenv(SERVER_KEYS_ENV, "env-key")
    options = serve_options(flags_of([]))
    assert options == ServeOptions(ServerSettings(api_keys=("env-key",)))
    assert (options.host, options.port, options.log_level) == ("127.0.0.1", 8000, "info")


def test_a_model_is_the_onnx_engine_asked_for(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SERVER_KEYS_ENV, raising=False)
    model = tmp_path / "m.onnx"
    options = serve_options(flags_of(["--api-key", "k", "--model", str(model), "--labels", "lip"]))
    assert options.settings.engine == "onnx"
    assert options.settings.engine_options == {"model": model, "labels": "lip"}
    with pytest.raises(click.UsageError, match="--labels"):
        serve_options(flags_of(["--api-key", "k", "--labels", "lip"]))


def test_the_command_serves_the_options_it_built(tmp_path: Path, monkeypatch) -> None:
    servers: list[uvicorn.Server] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: servers.append(self))
    monkeypatch.delenv(SERVER_KEYS_ENV, raising=False)
    args = ["--engine", "replay", "--replay-dir", str(tmp_path), "--api-key", "k",
            "--port", "0", "--host", "127.0.0.2", "--max-header-bytes", "4096"]  # fmt: skip
    result = CliRunner().invoke(serve_command, args)
    assert result.exit_code == 0, result.output
    (server,) = servers
    config = server.config
    assert (config.host, config.port) == ("127.0.0.2", 0)
    assert config.app.state.clothseg.settings == serve_options(flags_of(args)).settings
    assert config.h11_max_incomplete_event_size == 4096


BOUNDED = [
    pytest.param(field, flag, id=field.name)
    for cls in (ServerSettings, ServeOptions)
    for field, flag in flagged_fields(cls)
    if flag.minimum is not None or flag.maximum is not None
]


def build(field: dataclasses.Field[Any], value: Any) -> Any:
    if field.name in {f.name for f in dataclasses.fields(ServeOptions)}:
        return ServeOptions(ServerSettings(api_keys=("k",)), **{field.name: value})
    return ServerSettings(api_keys=("k",), **{field.name: value})


@pytest.mark.parametrize(("field", "flag"), BOUNDED)
@settings(max_examples=25, deadline=None)
@given(value=st.integers(-5, 70_000) | st.floats(-5, 70_000, allow_nan=False))
def test_the_flag_and_the_object_accept_the_same_values(field, flag, value) -> None:
    """A value the command refuses (exit 2) is one the settings refuse, and back."""
    kind = flag.kind or type(field_default(field))
    if kind is int:
        value = math.floor(value)
    text = str(value)
    try:
        flags_of(["--api-key", "k", flag_name(field, flag), text])
    except click.BadParameter:
        refused_by_flag = True
    else:
        refused_by_flag = False
    try:
        build(field, kind(value))
    except ConfigurationError as exc:
        assert field.name in str(exc)
        refused_by_object = True
    else:
        refused_by_object = False
    assert refused_by_flag == refused_by_object, text


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"workers": 0}, "workers must be at least 1, got 0."),
        ({"sync_timeout": -1}, "sync_timeout must be >= 0 s"),
        ({"result_ttl": 0}, "result_ttl must be > 0 s"),
        ({"fetch_deadline": math.nan}, "fetch_deadline must be > 0 s"),
        ({"max_header_bytes": 1000}, "max_header_bytes must be at least 1024"),
        ({"mask_format": "png"}, "mask_format must be one of url, base64, got 'png'."),
        ({"max_queue": "many"}, "max_queue must be a number"),
    ],
)
def test_bad_settings_say_which_and_why(options: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match.replace(".", r"\.")):
        ServerSettings(api_keys=("k",), **options)


def test_serve_options_check_where_to_listen() -> None:
    settings = ServerSettings(api_keys=("k",))
    with pytest.raises(ConfigurationError, match="port must be at most 65535"):
        ServeOptions(settings, port=70_000)
    with pytest.raises(ConfigurationError, match="log_level must be one of"):
        ServeOptions(settings, log_level="loud")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServeOptions(settings).port = 1  # type: ignore[misc]
