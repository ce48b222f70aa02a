"""The service contract as data: the option table, the Options object, URLs and secrets."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from clothseg_tools import contract
from clothseg_tools.classes import CLASS_TYPES
from clothseg_tools.contract import OPTION_NAMES, OPTIONS, Options
from clothseg_tools.errors import InvalidRequestError


def test_table_matches_api_md() -> None:
    assert {name: (spec.allowed, spec.default) for name, spec in OPTIONS.items()} == {
        "class_type": ((1, 2, 3, 4), 1),
        "output_type": ((1, 2, 3), 1),
        "detail_mode": ((1, 2), 1),
        "quality": ((1, 2), 1),
        "sync": ((0, 1), 0),
    }
    assert OPTION_NAMES == ("class_type", "output_type", "detail_mode", "quality")


@pytest.mark.parametrize("class_type", sorted(CLASS_TYPES))
def test_class_type_meanings_list_the_classes(class_type: int) -> None:
    text = OPTIONS["class_type"].values[class_type]
    assert text.split(": ", 1)[1] == ", ".join(CLASS_TYPES[class_type])


def test_options_fields_are_the_table() -> None:
    fields = dataclasses.fields(Options)
    assert tuple(f.name for f in fields) == OPTION_NAMES
    assert Options().as_dict() == {name: OPTIONS[name].default for name in OPTION_NAMES}


def test_options_are_checked_and_frozen() -> None:
    opts = Options(class_type="3", quality=2)  # type: ignore[arg-type]
    assert opts.class_type == 3 and opts.classes == CLASS_TYPES[3]
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.quality = 1  # type: ignore[misc]
    with pytest.raises(InvalidRequestError, match="output_type must be one of 1, 2, 3"):
        Options(output_type=4)
    with pytest.raises(InvalidRequestError, match="detail_mode"):
        Options(detail_mode=True)  # type: ignore[arg-type]
    assert Options(class_type=2) == Options.from_mapping({"class_type": 2, "workers": 3})
    assert hash(Options(class_type=2)) == hash(Options(class_type="2"))  # type: ignore[arg-type]


def test_form_fields_send_every_option() -> None:
    assert Options(output_type=3).form_fields(sync=False) == {
        "class_type": "1",
        "output_type": "3",
        "detail_mode": "1",
        "quality": "1",
        "sync": "0",
    }


@given(
    name=st.sampled_from(sorted(OPTIONS)),
    raw=st.one_of(st.integers(-5, 10), st.text(max_size=4), st.floats(allow_nan=True)),
)
def test_parse_option_accepts_exactly_the_allowed_values(name: str, raw: object) -> None:
    spec = OPTIONS[name]
    try:
        value = contract.parse_option(name, raw)
    except InvalidRequestError as exc:
        assert name in str(exc) and ", ".join(map(str, spec.allowed)) in str(exc)
    else:
        assert value in spec.allowed


@given(name=st.sampled_from(OPTION_NAMES), value=st.integers(-3, 6))
def test_check_options_agrees_with_the_table(name: str, value: int) -> None:
    if value in OPTIONS[name].allowed:
        assert contract.check_options(**{name: value}) == {name: value}
        assert contract.parse_option(name, str(value)) == value
    else:
        with pytest.raises(InvalidRequestError):
            contract.check_options(**{name: value})


def test_unknown_option_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="Unknown option 'sync'"):
        contract.check_options(sync=1)


def test_cli_flags_come_from_the_table() -> None:
    from clothseg_tools.cli import main

    out = CliRunner().invoke(main, ["segment", "--help"], terminal_width=200).output
    for name in OPTION_NAMES:
        assert f"--{name.replace('_', '-')}" in out
        assert OPTIONS[name].describe() in " ".join(out.split())


def test_server_reads_the_same_table() -> None:
    from clothseg_tools.server import forms

    assert {name: (s.allowed, s.default) for name, s in OPTIONS.items()} == forms.OPTIONS


@given(st.text(max_size=30))
def test_is_url_only_for_http_and_https(text: str) -> None:
    expected = text.strip().lower().startswith(("http://", "https://"))
    assert contract.is_url(text) is expected


@given(
    user=st.text("abc:", min_size=1, max_size=5),
    query=st.text("xyz=&", min_size=1, max_size=8),
)
def test_redacted_urls_keep_no_secret(user: str, query: str) -> None:
    url = f"https://{user}@cdn.example:8443/m/tops.png?sig={query}#frag"
    for shown in (contract.redact_url(url), contract.redact_value(url)):
        assert shown == "https://cdn.example:8443/m/tops.png"
    assert contract.safe_source(url).startswith("https://cdn.example:8443/m/tops.png#query-")


def test_secrets_are_scrubbed_as_tokens_only() -> None:
    assert contract.scrub_secrets("task failed for key k", ["k"]) == "task failed for key ***"
    assert "sk-9" not in contract.scrub_secrets("bad key sk-9.", ["sk-9"])
    assert repr(contract.Secret("sk-9")) == "<hidden>"


def test_task_path_encodes_the_id() -> None:
    assert contract.task_path("a b/c") == contract.ENDPOINT + "/a%20b%2Fc"
