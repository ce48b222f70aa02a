"""The service contract (API.md) as data: options, endpoint, key header, env names, states.

One table, :data:`OPTIONS`, says every request option's name, allowed values, default and
meaning. The client checks and sends options from it, the server parses and documents
them from it, the CLI builds its flags and help from it and the docs print it, so adding
an option means adding a row here and the code that acts on it. The same module owns the
endpoint path, the header that carries the API key, the environment variables the
library reads, the task state codes, what counts as a URL, and how URLs and keys are
hidden before they reach a message, a log or a file.

Examples
--------
>>> from clothseg_tools.contract import ENDPOINT, OPTIONS, Options
>>> ENDPOINT
'/api/tasks/visual/clothing-segmentation'
>>> OPTIONS["quality"].describe()
'1 regular, 2 high precision'
>>> Options(class_type=3).classes
('hair', 'face', 'head', 'body')
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import functools
import hashlib
import logging
import math
import re
import urllib.parse
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from .classes import CLASS_TYPES
from .errors import InvalidRequestError

__all__ = [
    "ENDPOINT",
    "KEY_ENV",
    "KEY_HEADER",
    "OPTIONS",
    "OPTION_NAMES",
    "REPLAY_DIR_ENV",
    "SERVER_KEYS_ENV",
    "STATE_FAILED",
    "STATE_PROCESSING",
    "STATE_QUEUED",
    "STATE_SUCCEEDED",
    "URL_ENV",
    "OptionSpec",
    "Options",
    "Secret",
    "check_options",
    "is_url",
    "parse_option",
    "redact_url",
    "redact_value",
    "safe_source",
    "known_secrets",
    "scrub_exception",
    "scrub_secrets",
    "task_path",
]

# -- the wire ----------------------------------------------------------------------------

#: Path of the create endpoint; a task is ``ENDPOINT/{task_id}`` (API.md).
ENDPOINT = "/api/tasks/visual/clothing-segmentation"

#: Header that carries the API key (API.md, "Authentication").
KEY_HEADER = "X-API-KEY"

#: Environment variable with the client's API key, read when none is passed.
KEY_ENV = "CLOTHSEG_API_KEY"
#: Environment variable with the service's base URL, read when none is passed.
URL_ENV = "CLOTHSEG_BASE_URL"
#: Environment variable naming the replay engine's record folder.
REPLAY_DIR_ENV = "CLOTHSEG_REPLAY_DIR"
#: Environment variable with the local server's accepted keys (comma-separated).
SERVER_KEYS_ENV = "CLOTHSEG_SERVER_KEYS"

#: ``data.state`` of a task that succeeded; ``> 1`` is processing, ``< 0`` failed.
STATE_SUCCEEDED = 1
#: Waiting for a worker (the local server's processing state before work starts).
STATE_QUEUED = 2
#: Being segmented.
STATE_PROCESSING = 3
#: Failed; the answer's ``message`` says why.
STATE_FAILED = -1


def task_path(task_id: str) -> str:
    """The query path of one task, its id percent-encoded.

    Examples
    --------
    >>> task_path("a/b")
    '/api/tasks/visual/clothing-segmentation/a%2Fb'
    """
    return f"{ENDPOINT}/{urllib.parse.quote(task_id, safe='')}"


# -- the options ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One request option of the contract.

    Attributes
    ----------
    name : str
        The form field's name.
    values : dict of int to str
        Each allowed value and what it means.
    default : int
        The value when the field is absent.
    meaning : str
        What the option chooses.
    """

    name: str
    values: Mapping[int, str]
    default: int
    meaning: str

    @property
    def allowed(self) -> tuple[int, ...]:
        """The allowed values, in order."""
        return tuple(self.values)

    def describe(self) -> str:
        """``"1 regular, 2 high precision"``: each value and a short meaning."""
        return ", ".join(f"{v} {text.split(':')[0]}" for v, text in self.values.items())


def _class_meaning(name: str, class_type: int) -> str:
    return f"{name}: {', '.join(CLASS_TYPES[class_type])}"


#: The request options, in the order the create request lists them (API.md).
OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec(
            "class_type",
            {
                1: _class_meaning("clothing", 1),
                2: _class_meaning("fashion", 2),
                3: _class_meaning("portrait", 3),
                4: "all classes: " + ", ".join(CLASS_TYPES[4]),
            },
            1,
            "which classes come back",
        ),
        OptionSpec(
            "output_type",
            {
                1: "class masks: one merged mask per class",
                2: "per-garment parts: the subdivided garment masks as one ZIP",
                3: "both",
            },
            1,
            "merged class masks, per-garment parts, or both",
        ),
        OptionSpec(
            "detail_mode",
            {1: "regular: fine-grained", 2: "ultra-high detail"},
            1,
            "how fine the mask edges are",
        ),
        OptionSpec(
            "quality",
            {1: "regular", 2: "high precision"},
            1,
            "speed against precision",
        ),
        OptionSpec(
            "sync",
            {0: "no: answer with a task id at once", 1: "yes: wait and answer with the result"},
            0,
            "whether the create request waits for the result",
        ),
    )
}

#: The options that shape a result (every option but ``sync``, which only says how the
#: request waits); the fields of :class:`Options`.
OPTION_NAMES: tuple[str, ...] = tuple(name for name in OPTIONS if name != "sync")


def check_options(**options: Any) -> dict[str, int]:
    """Check options given from Python against their documented values.

    Returns
    -------
    dict of str to int
        The options as ints.

    Raises
    ------
    InvalidRequestError
        An unknown option or a value the contract does not define (a ``ValueError``).

    Examples
    --------
    >>> check_options(class_type="2", quality=1)
    {'class_type': 2, 'quality': 1}
    >>> check_options(output_type=4)
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.InvalidRequestError: output_type must be one of 1, 2, 3 (got 4).
    """
    out: dict[str, int] = {}
    for name, value in options.items():
        spec = OPTIONS.get(name) if name in OPTION_NAMES else None
        if spec is None:
            raise InvalidRequestError(
                f"Unknown option {name!r}; the options are {', '.join(OPTION_NAMES)}."
            )
        allowed = spec.allowed
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):  # None, "x", inf, a huge str
            number = -1
        if isinstance(value, bool) or number not in allowed or str(number) != str(value).strip():
            raise InvalidRequestError(
                f"{name} must be one of {', '.join(map(str, allowed))} (got {_shown(value)})."
            )
        out[name] = number
    return out


#: A number as an option may be sent in text: ASCII digits only, optional sign, decimal
#: point and exponent. ``float()`` would also take other scripts' digits (``"١"``),
#: ``"1_0"``, ``"inf"`` and ``"nan"``; the service documents plain numbers.
_NUMERAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)

#: Whitespace stripped around a text value (ASCII only, as the numerals).
_ASCII_SPACE = " \t\r\n\x0b\x0c"


def _exact_value(raw: Any) -> decimal.Decimal | None:
    """The exact number ``raw`` states, or ``None`` when it is not a plain number."""
    if isinstance(raw, bool):
        return None  # JSON true/false are not numbers
    if isinstance(raw, int):
        return decimal.Decimal(raw)
    if isinstance(raw, (float, decimal.Decimal)):
        return decimal.Decimal(raw) if math.isfinite(raw) else None
    if isinstance(raw, str):
        text = raw.strip(_ASCII_SPACE)
        if len(text) <= 64 and _NUMERAL.fullmatch(text):
            return decimal.Decimal(text)
    return None


def _shown(raw: Any) -> str:
    """``raw`` for a message: its repr, cut to 40 characters; never fails."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 128:
        return f"an integer of about {int(raw.bit_length() * 0.30103) + 1} digits"
    try:
        # a JSON number arrives as a Decimal: show it as it was written
        text = str(raw) if isinstance(raw, decimal.Decimal) else repr(raw)
    except ValueError:  # e.g. an int past Python's digit limit for str()
        return f"a {type(raw).__name__} too long to show"
    return text if len(text) <= 40 else text[:37] + "..."


def parse_option(name: str, raw: Any) -> int:
    """Read one option as a request sends it: a number or numeric string; absent = default.

    The value must state one of the option's values exactly: ``2``, ``2.0``, ``"2"``,
    ``" 2 "``, ``"2e0"`` mean 2; ``"2.0000000001"``, ``true``, ``"0x2"``, ``"2_0"``,
    ``"inf"``, digits of other scripts (``"٢"``) and numbers of any size outside the
    values are refused with the same message. Nothing here raises anything else.

    Raises
    ------
    InvalidRequestError
        A value outside the option's values; the message lists them.

    Examples
    --------
    >>> parse_option("quality", "2"), parse_option("quality", None), parse_option("sync", 1.0)
    (2, 1, 1)
    >>> parse_option("class_type", 10**400)
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.InvalidRequestError: class_type must be one of 1, 2, 3, 4 ...
    """
    spec = OPTIONS[name]
    if raw is None or (isinstance(raw, str) and not raw.strip(_ASCII_SPACE)):
        return spec.default
    value = _exact_value(raw)
    if value is not None:
        for allowed in spec.allowed:
            if value == allowed:
                return allowed
    choices = ", ".join(str(v) for v in spec.allowed)
    raise InvalidRequestError(
        f"{name} must be one of {choices} (as a number or a numeric string of ASCII digits), "
        f"got {_shown(raw)}; see the API reference for what each value means."
    )


@dataclasses.dataclass(frozen=True)
class Options:
    """The options of one segmentation, checked against :data:`OPTIONS`.

    Its fields are :data:`OPTION_NAMES`, each defaulting to the contract's default.
    The client, the engines, the batch runner and the CLI pass one of these instead
    of the separate keywords.

    Raises
    ------
    InvalidRequestError
        A value outside its option's values.

    Examples
    --------
    >>> opts = Options(class_type=2, quality="2")
    >>> opts
    Options(class_type=2, output_type=1, detail_mode=1, quality=2)
    >>> opts.as_dict()
    {'class_type': 2, 'output_type': 1, 'detail_mode': 1, 'quality': 2}
    >>> Options.from_mapping({"class_type": 4, "workers": 8}).class_type
    4
    """

    class_type: int = OPTIONS["class_type"].default
    output_type: int = OPTIONS["output_type"].default
    detail_mode: int = OPTIONS["detail_mode"].default
    quality: int = OPTIONS["quality"].default

    def __post_init__(self) -> None:
        checked = check_options(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Options:
        """The options among ``values`` (other keys are ignored); missing ones default."""
        return cls(**{k: v for k, v in values.items() if k in OPTION_NAMES})

    def as_dict(self) -> dict[str, int]:
        """Option name -> value, in :data:`OPTION_NAMES` order."""
        return {name: getattr(self, name) for name in OPTION_NAMES}

    def form_fields(self, *, sync: bool = False) -> dict[str, str]:
        """The create request's option fields as sent.

        Examples
        --------
        >>> Options(class_type=2).form_fields(sync=True)
        {'class_type': '2', 'output_type': '1', 'detail_mode': '1', 'quality': '1', 'sync': '1'}
        """
        fields = {name: str(value) for name, value in self.as_dict().items()}
        fields["sync"] = "1" if sync else "0"
        return fields

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes ``class_type`` asks for."""
        return CLASS_TYPES[self.class_type]


# -- URLs and secrets ----------------------------------------------------------------------

_URL_PREFIXES = ("http://", "https://")


def is_url(value: Any) -> bool:
    """True for a string that starts with ``http://`` or ``https://`` (any case).

    Examples
    --------
    >>> is_url(" HTTPS://example.com/a.jpg"), is_url("photos/a.jpg"), is_url(b"http://x")
    (True, False, False)
    """
    return isinstance(value, str) and value.strip()[:8].lower().startswith(_URL_PREFIXES)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, fragment and credentials.

    Signed result links carry their token in the query string; this is the only
    form of a URL the library puts in messages and logs.

    Examples
    --------
    >>> redact_url("https://user:pw@cdn.example.com/m/tops.png?X-Amz-Signature=abc#x")
    'https://cdn.example.com/m/tops.png'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparsable URL>"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_value(value: str) -> str:
    """A mask value or URL as it may appear in messages, logs and saved files.

    URLs lose their credentials, query string and fragment (see :func:`redact_url`);
    anything else (inline base64 data) becomes a short marker.

    Examples
    --------
    >>> redact_value("https://cdn.example/m/tops.png?X-Amz-Signature=abc")
    'https://cdn.example/m/tops.png'
    >>> redact_value("data:image/png;base64,iVBORw0KGgo=")
    '<inline data>'
    """
    text = str(value).strip()
    if is_url(text):
        return redact_url(text)
    return "<inline data>"


def safe_source(url: str) -> str:
    """A URL as a manifest records it: no user info, the query replaced by its hash.

    Signed links carry their secret in the query string, which must never reach a
    file or a log; its hash still tells two links to the same path apart.

    Examples
    --------
    >>> safe_source("https://user:pw@cdn.example/a.jpg?X-Signature=abc")
    'https://cdn.example/a.jpg#query-sha256=99178e95fc5a613b'
    >>> safe_source("https://cdn.example/a.jpg")
    'https://cdn.example/a.jpg'
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if parts.query:
        digest = hashlib.sha256(parts.query.encode("utf-8")).hexdigest()[:16]
        clean += f"#query-sha256={digest}"
    return clean


#: Keys at least this long are hidden wherever they appear, inside longer tokens too
#: (``key-<KEY>-rejected``, a URL path, a request id). A shorter key is hidden where no
#: letter or digit touches it: hiding every "k" of a one-letter test key would turn
#: "task" into "tas***" and hide nothing worth hiding.
SUBSTRING_KEY_LENGTH = 8


@functools.lru_cache(maxsize=64)
def _key_pattern(secret: str) -> re.Pattern[str]:
    """The key, each character as itself or percent-encoded (in either case of hex)."""
    parts = []
    for ch in secret:
        encoded = "".join(
            f"%[{b >> 4:X}{b >> 4:x}][{b & 15:X}{b & 15:x}]" for b in ch.encode("utf-8")
        )
        forms = [re.escape(ch), encoded]
        if ch == " ":
            forms.append(r"\+")
        parts.append("(?:" + "|".join(forms) + ")")
    body = "".join(parts)
    if len(secret) < SUBSTRING_KEY_LENGTH:
        body = rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])"
    return re.compile(body)


def scrub_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """Replace each secret (an API key) in ``text`` with ``***``, wherever it appears.

    The key is also found percent-encoded, wholly or in part. Keys shorter than
    :data:`SUBSTRING_KEY_LENGTH` are hidden only where no letter or digit touches
    them. ``secrets`` defaults to the keys of the live :class:`Secret` objects
    (every client's key).

    Examples
    --------
    >>> scrub_secrets("task failed: key=k", ["k"])
    'task failed: key=***'
    >>> scrub_secrets("key-sk-0123456789-rejected, id req-sk-0123456789", ["sk-0123456789"])
    'key-***-rejected, id req-***'
    """
    keys = known_secrets() if secrets is None else tuple(secrets)
    for secret in keys:
        if secret:
            text = _key_pattern(secret).sub("***", text)
    return text


def _scrub_value(value: Any, keys: tuple[str, ...], chained: list[BaseException]) -> Any:
    if isinstance(value, str):
        return scrub_secrets(value, keys)
    if isinstance(value, (tuple, list)):
        return type(value)(_scrub_value(v, keys, chained) for v in value)
    if isinstance(value, BaseException):
        chained.append(value)
    return value


def scrub_exception(exc: BaseException, secrets: Iterable[str] | None = None) -> BaseException:
    """Hide the secrets in ``exc`` and every exception it chains, in place; return ``exc``.

    Its ``args`` (what ``str`` and ``repr`` show), its string attributes
    (``message``, ``request_id``, ``url`` ...) and its notes are rewritten with
    :func:`scrub_secrets`; so are those of its ``__cause__`` and ``__context__``,
    however deep (the ``requests`` error under an ``APIConnectionError`` names the URL).

    Examples
    --------
    >>> try:
    ...     raise ValueError("bad key sk-0123456789")
    ... except ValueError as exc:
    ...     str(scrub_exception(exc, ["sk-0123456789"]))
    'bad key ***'
    """
    keys = tuple(s for s in (known_secrets() if secrets is None else secrets) if s)
    if not keys:
        return exc
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 64:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):
            current.args = _scrub_value(current.args, keys, pending)
        for name, value in list(getattr(current, "__dict__", {}).items()):
            cleaned = _scrub_value(value, keys, pending)
            if isinstance(value, (str, tuple, list)) and cleaned != value:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(current, name, cleaned)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return exc


class SecretFilter(logging.Filter):
    """A logging filter that hides the live API keys in a record's message and traceback.

    Installed on the library's loggers as soon as a :class:`Secret` exists.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        keys = known_secrets()
        if not keys:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format: leave it to logging to report
            return True
        cleaned = scrub_secrets(message, keys)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1], keys)
            record.exc_text = None
        return True


_LIBRARY_LOGGERS = ("clothseg_tools", "clothseg_tools.api", "clothseg_tools.server")
_LIVE_SECRETS: weakref.WeakSet[Secret] = weakref.WeakSet()
_FILTER = SecretFilter()


def known_secrets() -> tuple[str, ...]:
    """The keys of the :class:`Secret` objects alive in this process.

    Only keys of at least :data:`SUBSTRING_KEY_LENGTH` characters: these are hidden in
    every log record and manifest line of the process, where a short test key such as
    ``"k"`` would garble unrelated text (a client still hides its own key, whatever its
    length, in the errors it raises).
    """
    keys = {secret.reveal() for secret in list(_LIVE_SECRETS)}
    return tuple(key for key in keys if len(key) >= SUBSTRING_KEY_LENGTH)


def _install_filter() -> None:
    # logger filters are not inherited: each logger of the library gets its own
    names = set(_LIBRARY_LOGGERS) | {
        name for name in logging.root.manager.loggerDict if name.startswith("clothseg_tools.")
    }
    for name in sorted(names):
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)


class Secret:
    """Holds the API key so that no repr, ``vars()`` dump or traceback shows it.

    While it lives, its key is one of :func:`known_secrets`: the library's loggers and
    the errors a :class:`~clothseg_tools.api.Client` raises hide it wherever it appears.

    Examples
    --------
    >>> key = Secret("sk-123")
    >>> key, str(key), key.reveal()
    (<hidden>, '<hidden>', 'sk-123')
    """

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # from now on this key is hidden in every message, log record and manifest line
        _LIVE_SECRETS.add(self)
        _install_filter()

    def reveal(self) -> str:
        """The key itself, for the request header only."""
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__
