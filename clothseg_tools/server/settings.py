"""Server settings (they mirror ``clothseg serve``'s flags) and the test-control specs.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .. import limits
from ..contract import SERVER_KEYS_ENV
from ..errors import ConfigurationError

__all__ = [
    "FAULT_HEADER",
    "MASK_FORMATS",
    "PROGRESSION_HEADER",
    "Fault",
    "Progression",
    "ServerSettings",
    "parse_fault",
    "parse_progression",
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


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything a server needs; ``clothseg serve`` builds one from its flags.

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
    workers: int = 2
    max_queue: int = 1000
    sync_timeout: float = 30.0
    result_ttl: float = float(limits.RESULT_TTL_SECONDS)
    mask_format: str = "url"
    data_dir: Path | None = None
    public_url: str | None = None
    allow_private_urls: bool = False
    fetch_timeout: float = 10.0
    fetch_deadline: float = 30.0
    fetch_workers: int = 16
    max_fetch_queue: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    max_header_bytes: int = 32 * 1024
    test_controls: bool = False
    progression: str = "immediate"
    faults: Mapping[str, float] = dataclasses.field(default_factory=dict)
    fault_seed: int | None = None

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
        checks = [
            (int(self.workers) >= 1, f"workers must be at least 1, got {self.workers}."),
            (int(self.max_queue) >= 1, f"max_queue must be at least 1, got {self.max_queue}."),
            (self.sync_timeout >= 0, f"sync_timeout must be >= 0 s, got {self.sync_timeout}."),
            (self.result_ttl > 0, f"result_ttl must be > 0 s, got {self.result_ttl}."),
            (self.fetch_timeout > 0, f"fetch_timeout must be > 0 s, got {self.fetch_timeout}."),
            (
                self.fetch_deadline > 0,
                f"fetch_deadline must be > 0 s, got {self.fetch_deadline}.",
            ),
            (
                int(self.fetch_workers) >= 1,
                f"fetch_workers must be at least 1, got {self.fetch_workers}.",
            ),
            (
                int(self.max_fetch_queue) >= 0,
                f"max_fetch_queue must be at least 0, got {self.max_fetch_queue}.",
            ),
            (
                self.header_timeout > 0,
                f"header_timeout must be > 0 s, got {self.header_timeout}.",
            ),
            (self.body_timeout > 0, f"body_timeout must be > 0 s, got {self.body_timeout}."),
            (
                int(self.max_header_bytes) >= 1024,
                f"max_header_bytes must be at least 1024, got {self.max_header_bytes}.",
            ),
            (
                self.mask_format in MASK_FORMATS,
                f"mask_format must be one of {', '.join(MASK_FORMATS)}, got {self.mask_format!r}.",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigurationError(message)
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
