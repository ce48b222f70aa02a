"""The flags several commands share are defined once (clothseg_tools.cli.options)."""

from __future__ import annotations

import click
import pytest

from clothseg_tools.cli import main
from clothseg_tools.contract import KEY_ENV, OPTION_NAMES, OPTIONS, URL_ENV


def command(name: str) -> click.Command:
    ctx = click.Context(main)
    cmd = main.get_command(ctx, name)
    assert cmd is not None, name
    return cmd


def param(cmd: click.Command, flag: str) -> click.Parameter:
    (found,) = [p for p in cmd.params if flag in getattr(p, "opts", ())]
    return found


def test_replay_dir_and_engine_are_one_definition() -> None:
    segment, serve = command("segment"), command("serve")
    assert param(segment, "--replay-dir").help == param(serve, "--replay-dir").help
    assert param(segment, "--engine").name == param(serve, "--engine").name == "engine"


@pytest.mark.parametrize(
    "name", ["segment", "serve", "demo", "report", "merge", "cutout", "overlay", "tryon"]
)
def test_every_batch_command_has_workers(name: str) -> None:
    workers = param(command(name), "--workers")
    assert "-w" in workers.opts and isinstance(workers.type, click.IntRange)


def test_client_key_and_address_come_from_the_contracts_environment() -> None:
    segment = command("segment")
    assert param(segment, "--api-key").envvar == KEY_ENV
    assert param(segment, "--base-url").envvar == URL_ENV
    # the server's --api-key is the list of keys it accepts, not the client's key
    keys = param(command("serve"), "--api-key")
    assert keys.multiple and keys.name == "api_keys"


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_option_flags_follow_the_table(name: str) -> None:
    flag = param(command("segment"), f"--{name.replace('_', '-')}")
    spec = OPTIONS[name]
    assert flag.default == spec.default
    assert isinstance(flag.type, click.IntRange)
    assert (flag.type.min, flag.type.max) == (spec.allowed[0], spec.allowed[-1])


@pytest.mark.parametrize("name", ["export", "stats", "labelmap"])
def test_min_value_is_one_definition(name: str) -> None:
    flag = param(command(name), "--min-value")
    reference = param(command("stats"), "--min-value")
    assert (flag.help, flag.default, flag.name) == (reference.help, 128, "min_value")
    assert isinstance(flag.type, click.IntRange)
    assert (flag.type.min, flag.type.max) == (1, 255)
