"""Server settings (each field with a :class:`Flag` is a ``clothseg serve`` flag), the
options ``clothseg serve`` runs with, and the test-control specs.

Examples
--------
>>> s = ServerSettings(api_keys=("k",), test_controls=True, progression="time:0.5")
>>> s.progression_spec
Progression(kind='time', value=0.5)
>>> fault = parse_fault("status=429;retry_after=1")
>>> fault.status, fault.retry_after, fault.drop
(429, 1.0, None)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .. import limits
from ..contract import SERVER_KEYS_ENV
from ..errors import ConfigurationError

__all__ = [
    "FAULT_HEADER",
    "LOG_LEVELS",
    "MASK_FORMATS",
    "PROGRESSION_HEADER",
    "Fault",
    "Flag",
    "Progression",
    "ServeOptions",
    "ServerSettings",
    "field_default",
    "flagged_fields",
    "parse_fault",
    "parse_progression",
    "parse_random_faults",
]

#: Request header that injects a fault (only with ``test_controls``).
FAULT_HEADER = "X-Clothseg-Fault"

#: Request header that sets one task's progression (only with ``test_controls``).
PROGRESSION_HEADER = "X-Clothseg-Progression"

#: How masks are sent: links to PNGs served by this server, or the PNGs inline as base64.
MASK_FORMATS = ("url", "base64")


class Progression(NamedTuple):
    """How a finished task is revealed to status reads.

    ``immediate``: as soon as the engine is done. ``time``: not before ``value`` seconds
    after creation, progress rising with time. ``manual``: after ``value`` status reads
    of the finished task that report it still processing.
    """

    kind: str
    value: float = 0.0

    @property
    def text(self) -> str:
        """The spec as text (``parse_progression(p.text) == p``)."""
        return self.kind if self.kind == "immediate" else f"{self.kind}:{self.value:g}"


def parse_progression(text: str) -> Progression:
    """Parse ``immediate``, ``time:<seconds>`` or ``manual:<reads>``.

    Raises
    ------
    ValueError
        Anything else; the message lists the accepted forms.

    Examples
    --------
    >>> parse_progression("manual:3")
    Progression(kind='manual', value=3.0)
    """
    kind, _, arg = str(text).strip().partition(":")
    kind = kind.strip().lower()
    hint = "use 'immediate', 'time:<seconds>' (e.g. time:2.5) or 'manual:<reads>' (e.g. manual:3)"
    if kind == "immediate" and not arg:
        return Progression("immediate")
    if kind in ("time", "manual") and arg:
        try:
            value = float(arg)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0 and (kind == "time" or value == int(value)):
            return Progression(kind, value)
    raise ValueError(f"Invalid progression {text!r}: {hint}.")


class Fault(NamedTuple):
    """One injected fault (see the ``clothseg_tools.server`` docstring).

    Attributes
    ----------
    status : int or None
        Answer with this status instead of handling the request.
    retry_after : float or None
        ``Retry-After`` seconds sent with ``status`` (429 gets 1 s when not given).
    latency : float
        Seconds to wait before handling the request.
    drop : str or None
        ``"before"``: close the connection without answering or acting;
        ``"after"``: act on the request, then close without answering.
    corrupt_mask : bool
        The task's mask PNGs are served truncated, so they fail to decode.
    expire : float or None
        The task's result lifetime in seconds; ``0`` expires it right after the first
        answer that reports it finished.
    message : str or None
        Message of the injected ``status`` answer.
    """

    status: int | None = None
    retry_after: float | None = None
    latency: float = 0.0
    drop: str | None = None
    corrupt_mask: bool = False
    expire: float | None = None
    message: str | None = None

    def merge(self, other: Fault) -> Fault:
        """Combine two faults; values set in ``other`` win."""
        return Fault(
            status=other.status if other.status is not None else self.status,
            retry_after=other.retry_after if other.retry_after is not None else self.retry_after,
            latency=self.latency + other.latency,
            drop=other.drop or self.drop,
            corrupt_mask=self.corrupt_mask or other.corrupt_mask,
            expire=other.expire if other.expire is not None else self.expire,
            message=other.message or self.message,
        )

    @property
    def is_empty(self) -> bool:
        """True when the fault does nothing."""
        return self == Fault()


_FAULT_KEYS = ("status", "retry_after", "latency", "drop", "corrupt_mask", "expire", "message")


def parse_fault(text: str) -> Fault:
    """Parse a fault spec: ``key[=value]`` items separated by ``;``.

    Keys: ``status=<400..599>``, ``retry_after=<s>``, ``latency=<s>``,
    ``drop`` (= ``drop=before``) or ``drop=after``, ``corrupt_mask``, ``expire``
    (= ``expire=0``) or ``expire=<s>``, ``message=<text>``.

    Raises
    ------
    ValueError
        An unknown key or a bad value; the message says which and what is accepted.

    Examples
    --------
    >>> fault = parse_fault("latency=0.2; drop=after; expire")
    >>> fault.latency, fault.drop, fault.expire, fault.status
    (0.2, 'after', 0.0, None)
    """
    fields: dict[str, Any] = {}
    for raw in str(text).split(";"):
        item = raw.strip()
        if not item:
            continue
        key, has_value, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        value = value.strip()
        if key not in _FAULT_KEYS:
            raise ValueError(
                f"Unknown fault {key!r} in {text!r}; known faults: {', '.join(_FAULT_KEYS)}."
            )
        if key == "status":
            code = _number(value, key, text)
            if code != int(code) or not 400 <= code <= 599:
                raise ValueError(f"Fault status must be a code from 400 to 599, got {value!r}.")
            fields[key] = int(code)
        elif key in ("retry_after", "latency"):
            fields[key] = _number(value, key, text)
        elif key == "drop":
            mode = value.lower() if has_value else "before"
            if mode not in ("before", "after"):
                raise ValueError(
                    f"Fault drop must be 'drop', 'drop=before' or 'drop=after', got {item!r}."
                )
            fields[key] = mode
        elif key == "corrupt_mask":
            fields[key] = True
        elif key == "expire":
            fields[key] = _number(value, key, text) if has_value else 0.0
        else:
            fields[key] = value
    return Fault(**fields)


def _number(value: str, key: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"Fault {key} needs a non-negative number, got {value!r} in {text!r}.")
    return number


def parse_random_faults(values: Iterable[str]) -> dict[str, float]:
    """Parse ``--fault`` values, ``SPEC@PROBABILITY`` each, into ``{spec: probability}``.

    The specs themselves are checked by :class:`ServerSettings` (with
    :func:`parse_fault`).

    Raises
    ------
    ValueError
        A value without ``@``, or a probability that is not a number.

    Examples
    --------
    >>> parse_random_faults(["status=503@0.1", "latency=0.2;drop@0.5"])
    {'status=503': 0.1, 'latency=0.2;drop': 0.5}
    """
    faults: dict[str, float] = {}
    for value in values:
        spec, sep, prob = value.rpartition("@")
        if not sep or not spec:
            raise ValueError(f"{value!r} should be SPEC@PROBABILITY, e.g. 'status=503@0.1'.")
        try:
            faults[spec] = float(prob)
        except ValueError:
            raise ValueError(f"{prob!r} is not a probability (0..1) in {value!r}.") from None
    return faults


@dataclasses.dataclass(frozen=True)
class Flag:
    """A settings field as a ``clothseg serve`` flag, and the values it may take.

    Each field of :class:`ServerSettings` and :class:`ServeOptions` that carries one
    (as ``metadata["flag"]``) is a flag named after the field (``max_queue`` is
    ``--max-queue``) with the field's default, and the same bounds check its value
    whether it comes from the command line or from Python.

    Attributes
    ----------
    help : str or None
        The flag's help.
    minimum, maximum : float or None
        The smallest and the largest value allowed.
    above : bool
        The value must be above ``minimum``, not equal to it.
    unit : str
        The unit the messages give ``minimum`` in (``" s"``).
    choices : tuple of str
        The values allowed (empty: any).
    kind : type or None
        The value's type where the default (``None``) does not tell it.
    name : str or None
        The flag's name where it is not the field's (``--fault`` sets ``faults``).
    metavar : str or None
        What the help shows for the value.
    parse : callable or None
        Makes a repeatable flag: turns its values into the field's value, raising
        ``ValueError`` with a message for the user.
    shared : bool
        The flag is one several commands share (``--workers``): the command adds it
        from :mod:`clothseg_tools.cli.options`, with this help and the field's default.

    Examples
    --------
    >>> Flag("Seconds results live.", minimum=0, above=True, unit=" s").problem("result_ttl", 0)
    'result_ttl must be > 0 s, got 0.'
    >>> Flag(minimum=1).problem("workers", 2) is None
    True
    """

    help: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    unit: str = ""
    choices: tuple[str, ...] = ()
    kind: type | None = None
    name: str | None = None
    metavar: str | None = None
    parse: Callable[[tuple[str, ...]], Any] | None = None
    shared: bool = False

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for the field ``name`` (``None``: nothing)."""
        if self.choices and value not in self.choices:
            return f"{name} must be one of {', '.join(self.choices)}, got {value!r}."
        if value is None or (self.minimum is None and self.maximum is None):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{name} must be a number, got {value!r}."
        low, high = self.minimum, self.maximum
        # written so that NaN fails every bound
        if low is not None and not (number > low if self.above else number >= low):
            if self.unit:
                bound = f"{'>' if self.above else '>='} {low:g}{self.unit}"
            else:
                bound = f"{'above' if self.above else 'at least'} {low:g}"
            return f"{name} must be {bound}, got {value}."
        if high is not None and not number <= high:
            return f"{name} must be at most {high:g}{self.unit}, got {value}."
        return None


def _setting(
    default: Any = None,
    help: str | None = None,
    *,
    factory: Callable[[], Any] | None = None,
    **flag: Any,
) -> Any:
    """A field that is a flag: ``help`` and ``flag`` make its :class:`Flag`; ``factory``
    makes each instance's default instead of one shared ``default`` (a dict)."""
    metadata = {"flag": Flag(help, **flag)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flagged_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The fields of ``cls`` that are flags, with their :class:`Flag`, in field order.

    Examples
    --------
    >>> [field.name for field, _ in flagged_fields(ServeOptions)]
    ['host', 'port', 'log_level']
    """
    return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata]


def field_default(field: dataclasses.Field[Any]) -> Any:
    """A field's default value (a new one where the field has a factory).

    Examples
    --------
    >>> field_default(dataclasses.fields(ServeOptions)[1])
    '127.0.0.1'
    """
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _check_flags(obj: Any) -> None:
    for field, flag in flagged_fields(type(obj)):
        message = flag.problem(field.name, getattr(obj, field.name))
        if message:
            raise ConfigurationError(message)


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything a server needs; ``clothseg serve`` builds one from its flags.

    A field with a :class:`Flag` in its metadata is a flag of ``clothseg serve`` (with
    the field's default), and its bounds are checked here.

    Parameters
    ----------
    api_keys
        Accepted ``X-API-KEY`` values (at least one).
    engine
        Engine name for :func:`clothseg_tools.engines.get_engine` (``None``: the default).
    engine_options
        Keyword options for the engine (``{"replay_dir": ...}``).
    workers
        Engine worker threads.
    max_queue
        Tasks waiting for a worker before new ones are refused with 429.
    sync_timeout
        Seconds a ``sync=1`` create waits before answering with the processing state.
    result_ttl
        Seconds results (and their links) live after the task finished.
    mask_format
        ``"url"`` (links) or ``"base64"`` (PNG bytes inline).
    data_dir
        Keep tasks and results on disk here (SQLite index plus files); ``None``: memory.
    public_url
        Base URL for result links (behind a proxy); default: the URL the request came to.
    allow_private_urls
        Allow ``image_url`` to point at private, loopback and link-local addresses.
    fetch_timeout
        Connect timeout for ``image_url`` downloads, and the longest wait for any one
        read.
    fetch_deadline
        Deadline of a whole ``image_url`` fetch (waiting for a fetch thread,
        connecting, redirects, headers and body), however slowly the origin sends.
    fetch_workers
        ``image_url`` fetches that run at once, on threads of their own: slow
        origins never hold the threads that read uploads.
    max_fetch_queue
        Fetches that may wait for a fetch thread before new ones get 429.
    header_timeout
        Seconds a client has to send a request's whole header block (from the
        connection's start, or from its first byte on a kept-alive connection);
        then the server answers 408 and closes.
    body_timeout
        Seconds a client has to send a request's whole body once the headers are in.
    max_header_bytes
        Largest header block; a larger one is answered with 431.
    test_controls
        Enable ``POST /_clothseg/reset``, progression and fault headers.
    progression
        ``immediate``, ``time:<seconds>`` or ``manual:<reads>`` (needs ``test_controls``
        unless ``immediate``).
    faults
        Fault spec -> probability, applied at random to API requests (test controls).
    fault_seed
        Seed of the fault dice, for repeatable runs.
    """

    api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    engine: str | None = None
    engine_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    workers: int = _setting(2, "Engine worker threads.", minimum=1, shared=True)
    max_queue: int = _setting(
        1000, "Tasks waiting for a worker before new ones get 429.", minimum=1
    )
    sync_timeout: float = _setting(
        30.0, "Seconds a sync=1 request waits before answering 'processing'.", minimum=0, unit=" s"
    )
    result_ttl: float = _setting(
        float(limits.RESULT_TTL_SECONDS),
        "Seconds results and their links live.",
        minimum=0,
        above=True,
        unit=" s",
    )
    mask_format: str = _setting(
        "url", "Masks as links to PNGs, or PNGs inline as base64.", choices=MASK_FORMATS
    )
    data_dir: Path | None = _setting(  # noqa: RUF009 (_setting makes a dataclasses.field)
        None, "Keep tasks and results on disk here (survive restarts).", kind=Path
    )
    public_url: str | None = _setting(
        None, "Base URL for result links when behind a proxy.", kind=str
    )
    allow_private_urls: bool = _setting(
        False, "Let image_url reach private, loopback and link-local addresses."
    )
    fetch_timeout: float = _setting(
        10.0,
        "Connect timeout and longest wait for one read of an image_url download, in seconds.",
        minimum=0,
        above=True,
        unit=" s",
    )
    fetch_deadline: float = _setting(
        30.0,
        "Seconds a whole image_url fetch may take (connect, headers, body), however "
        "slowly the origin sends.",
        minimum=0,
        above=True,
        unit=" s",
    )
    fetch_workers: int = _setting(
        16, "image_url fetches run at once, on their own threads.", minimum=1
    )
    max_fetch_queue: int = _setting(
        64, "image_url fetches waiting for a thread before new ones get 429.", minimum=0
    )
    header_timeout: float = _setting(
        10.0,
        "Seconds a client has to send a request's headers (then 408).",
        minimum=0,
        above=True,
        unit=" s",
    )
    body_timeout: float = _setting(
        120.0,
        "Seconds a client has to send a request's body (then 408).",
        minimum=0,
        above=True,
        unit=" s",
    )
    max_header_bytes: int = _setting(
        32 * 1024, "Largest request header block (a larger one gets 431).", minimum=1024
    )
    test_controls: bool = _setting(
        False, "Enable /_clothseg/reset, progression and fault injection (for tests)."
    )
    progression: str = _setting(
        "immediate", "immediate, time:<seconds> or manual:<reads> (needs --test-controls)."
    )
    faults: Mapping[str, float] = _setting(
        factory=dict,
        help="Random fault with probability P, e.g. 'status=503@0.1' (needs --test-controls).",
        name="fault",
        metavar="SPEC@P",
        parse=parse_random_faults,
    )
    fault_seed: int | None = _setting(None, "Seed for the random faults.", kind=int)

    def __post_init__(self) -> None:
        keys = tuple(str(k) for k in self.api_keys if str(k))
        if not keys:
            raise ConfigurationError(
                "The server needs at least one API key: pass --api-key KEY or set "
                f"{SERVER_KEYS_ENV}=key1,key2."
            )
        object.__setattr__(self, "api_keys", keys)
        object.__setattr__(self, "engine_options", dict(self.engine_options))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        _check_flags(self)
        try:
            spec = parse_progression(self.progression)
            for fault in self.faults:
                parse_fault(fault)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not self.test_controls and (spec.kind != "immediate" or self.faults):
            raise ConfigurationError(
                "progression other than 'immediate' and random faults are test controls; "
                "start the server with --test-controls to use them."
            )
        for fault, p in self.faults.items():
            if not 0.0 <= float(p) <= 1.0:
                raise ConfigurationError(
                    f"Fault probability must be between 0 and 1, got {p} for {fault!r}."
                )

    @property
    def progression_spec(self) -> Progression:
        """The parsed default progression."""
        return parse_progression(self.progression)

    @property
    def fault_table(self) -> tuple[tuple[Fault, float], ...]:
        """The random faults, parsed, with their probabilities."""
        return tuple((parse_fault(spec), float(p)) for spec, p in self.faults.items())

    @classmethod
    def from_options(cls, *, api_keys: Sequence[str] = (), **options: Any) -> ServerSettings:
        """Build settings, adding keys from ``CLOTHSEG_SERVER_KEYS`` (comma-separated)."""
        env_keys = [k.strip() for k in os.environ.get(SERVER_KEYS_ENV, "").split(",")]
        keys = tuple(dict.fromkeys([*api_keys, *(k for k in env_keys if k)]))
        return cls(api_keys=keys, **options)


#: uvicorn's log levels ``clothseg serve`` offers.
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """How ``clothseg serve`` runs: the server's settings, and where uvicorn listens.

    The command builds one from its flags
    (:func:`~clothseg_tools.server.cli.serve_options`) and runs it with
    :func:`~clothseg_tools.server.cli.serve`; the settings go to
    :func:`~clothseg_tools.server.create_app`, the rest to uvicorn.

    Parameters
    ----------
    settings
        The server's settings.
    host
        Address to listen on.
    port
        Port to listen on (``0``: any free port).
    log_level
        uvicorn's log level: one of :data:`LOG_LEVELS`.

    Raises
    ------
    ConfigurationError
        A port outside 0..65535 or an unknown log level.

    Examples
    --------
    >>> options = ServeOptions(ServerSettings(api_keys=("k",)), port=0)
    >>> options.host, options.port, options.log_level, options.settings.workers
    ('127.0.0.1', 0, 'info', 2)
    """

    settings: ServerSettings
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8000, "Port to listen on (0: any free port).", minimum=0, maximum=65535)
    log_level: str = _setting("info", choices=LOG_LEVELS)

    def __post_init__(self) -> None:
        _check_flags(self)
