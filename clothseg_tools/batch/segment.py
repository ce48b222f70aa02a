"""The segmentation job: every input image to a saved result folder.

Two backends do the segmenting, chosen by :func:`make_segmenter`:

- ``remote``: the service, through :class:`clothseg_tools.api.Client` (used when an
  API key is configured);
- an in-process engine (``local``, the offline model, or ``replay``, recorded results)
  through :func:`clothseg_tools.result.segment_with_engine`, which applies the same
  input checks as an upload.

Each input's result is saved with :meth:`SegmentationResult.save` under
``<out>/<key>/``, ``reproducible``: the measured timings and the service's task go to
the item's manifest line, not ``result.json``, so two runs of the same batch write the
same bytes. The manifest line lists every file's checksum, so a rerun trusts the folder
only while it is intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import engines, limits
from ..contract import KEY_ENV, OPTION_NAMES, REPLAY_DIR_ENV, URL_ENV, Options
from ..decode import download
from ..errors import ConfigurationError, FileTooLargeError
from ..result import SegmentationResult, segment_with_engine
from ..segmentation import choose_engine
from . import runner
from .discover import BatchItem, InputNotFoundError, SkippedInput
from .manifest import Manifest, manifest_path, read_manifests
from .runner import BatchOptions, BatchSummary, ItemOutput, Job, Progress, now_iso, run_job
from .shards import Shard, shard_of

__all__ = [
    "BACKENDS",
    "REMOTE_WORKERS",
    "default_workers",
    "Segmenter",
    "choose_backend",
    "make_segmenter",
    "segment_batch",
    "segment_job",
]

logger = logging.getLogger("clothseg_tools")

#: Backend names ``--engine`` accepts (``auto`` picks one, see :func:`choose_backend`).
BACKENDS = ("auto", "remote", "local", "replay", "onnx")

#: Default workers for the remote service: each one mostly waits on the network, so
#: more of them than cores keep the service busy (the client's pool keeps 64 connections).
REMOTE_WORKERS = 8

if TYPE_CHECKING:
    from ..engines.base import Engine

Segmenter = Callable[[BatchItem], SegmentationResult]


def choose_backend(engine: str | None = "auto", *, api_key: str | None = None) -> str:
    """The backend a batch uses: :func:`~clothseg_tools.segmentation.choose_engine`,
    limited to :data:`BACKENDS`.

    Raises
    ------
    ConfigurationError
        An unknown name.
    EngineUnavailableError
        No key, and no in-process engine that can run.

    Examples
    --------
    >>> choose_backend("auto", api_key="k"), choose_backend("replay", api_key="k")
    ('remote', 'replay')
    """
    if engine not in (None, "auto") and engine not in BACKENDS:
        raise ConfigurationError(f"Unknown engine {engine!r}; choose one of {', '.join(BACKENDS)}.")
    return choose_engine(engine, api_key=api_key)


def default_workers(backend: str) -> int:
    """Workers that suit ``backend``: :data:`REMOTE_WORKERS` for the I/O-bound service,
    else the cores available (an in-process engine is CPU-bound: more threads than
    cores only make every image slower).

    Examples
    --------
    >>> default_workers("remote")
    8
    >>> from clothseg_tools.batch.runner import available_cpus
    >>> default_workers("local") == available_cpus()
    True
    """
    return REMOTE_WORKERS if backend == "remote" else runner.available_cpus()


def _read_source(item: BatchItem) -> bytes | str:
    """The input as the engine path wants it: a path, or downloaded bytes for a URL."""
    if not item.is_url:
        path = Path(item.source)
        # refuse before reading: a huge file must not be loaded just to be refused
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            if item.origin is None:
                raise
            raise InputNotFoundError(
                f"{path} does not exist (listed in {item.origin}); correct or remove that line."
            ) from None
        if size > limits.MAX_FILE_BYTES:
            raise FileTooLargeError(
                f"{path.name} is {size / 2**20:.1f} MB; the service accepts files up to "
                f"{limits.MAX_FILE_BYTES / 2**20:.0f} MB. Shrink or re-encode it."
            )
        return str(path)

    return download(item.location, max_bytes=limits.MAX_FILE_BYTES, what="image")


class _EngineSegmenter:
    """One engine per worker thread (models are not assumed to be thread-safe), or one
    shared by all when the engine says it is (``thread_safe``: the onnx engine's one
    session serves every thread, so the model is loaded once).

    Pickling keeps only how to build the engine, so a Ray worker that receives the
    job loads its own model once.
    """

    def __init__(self, factory: Callable[[], Any], name: str, api_options: Mapping[str, int]):
        self.name = name
        self._factory = factory
        self._api_options = dict(api_options)
        self._local = threading.local()
        self._engines: list[Any] = []
        self._lock = threading.Lock()
        # build one now, so a configuration problem (missing extra, bad replay dir)
        # stops the batch before it starts instead of failing every item
        self._engine()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_EngineSegmenter, (self._factory, self.name, self._api_options))

    def _engine(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            with self._lock:
                shared = self._engines[0] if self._engines else None
            if shared is not None and getattr(shared, "thread_safe", False):
                self._local.engine = shared
                return shared
            engine = self._factory()
            self._local.engine = engine
            with self._lock:
                self._engines.append(engine)
        return engine

    def __call__(self, item: BatchItem) -> SegmentationResult:
        return self.segment_data(_read_source(item), item.source)

    def segment_data(self, data: bytes | str, source: str) -> SegmentationResult:
        """Segment an encoded image (or a path), recorded as coming from ``source``."""
        return segment_with_engine(self._engine(), data, source=source, **self._api_options)

    def identity(self) -> dict[str, Any]:
        """The engine's :meth:`~clothseg_tools.engines.base.Engine.identity` (its model)."""
        with self._lock:
            first = self._engines[0] if self._engines else None
        engine = first if first is not None else self._engine()
        return dict(engine.identity()) if hasattr(engine, "identity") else {}

    def close(self) -> None:
        with self._lock:
            built, self._engines = self._engines, []
        for engine in built:
            with contextlib.suppress(Exception):
                engine.close()


class _RemoteSegmenter:
    """The service through one shared client (its HTTP session pools connections).

    Pickling keeps the client's settings, not its connections: a Ray worker that
    receives the job opens its own.
    """

    name = "remote"

    def __init__(
        self,
        client_options: Mapping[str, Any],
        api_options: Mapping[str, int],
        *,
        timeout: float | None = None,
    ) -> None:
        # lazy: the client pulls in requests
        from ..api import Client

        self._client_options = dict(client_options)
        self._api_options = dict(api_options)
        self._timeout = timeout
        self._client = Client(**self._client_options)
        self._options: dict[str, Any] = dict(api_options)
        if timeout is not None:
            self._options["timeout"] = float(timeout)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _RemoteSegmenter,
            (self._client_options, self._api_options),
            {"timeout": self._timeout},
        )

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        if state["timeout"] is not None:
            self._timeout = state["timeout"]
            self._options["timeout"] = float(state["timeout"])

    def __call__(self, item: BatchItem) -> SegmentationResult:
        image = item.location if item.is_url else _read_source(item)
        # the manifest's name for it: no signed query string
        return self.segment_data(image, item.source)

    def segment_data(self, data: bytes | str, source: str) -> SegmentationResult:
        """Segment an encoded image (or a path or URL), recorded as coming from ``source``."""
        result: SegmentationResult = self._client.segment(data, **self._options)
        result.source = source
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def make_segmenter(
    backend: str | Engine,
    *,
    api_options: Mapping[str, int],
    api_key: str | None = None,
    base_url: str | None = None,
    replay_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> _EngineSegmenter | _RemoteSegmenter:
    """Build the per-item segmenting function of ``backend``.

    Parameters
    ----------
    backend
        ``"remote"``, ``"local"`` or ``"replay"`` (see :func:`choose_backend`), or an
        :class:`~clothseg_tools.engines.base.Engine` instance, shared by all workers.
    api_options
        ``class_type``, ``output_type``, ``detail_mode``, ``quality``.
    api_key, base_url, max_retries
        For ``remote`` (defaults: the client's, from ``CLOTHSEG_API_KEY`` /
        ``CLOTHSEG_BASE_URL``).
    timeout
        For ``remote``: deadline in seconds for one image (create, wait, download).
    replay_dir
        The record folder of the ``replay`` engine.
    engine_options
        Further keyword options of the engine.

    Raises
    ------
    ConfigurationError
        Missing key, missing replay folder, or an engine whose extra is not installed.
    """
    options = dict(engine_options or {})
    if not isinstance(backend, str):
        engine = backend
        return _EngineSegmenter(lambda: engine, engine.name or type(engine).__name__, api_options)
    if backend == "remote":
        kwargs: dict[str, Any] = {"api_key": api_key, "base_url": base_url}
        if max_retries is not None:
            kwargs["max_retries"] = max_retries
        # a missing key or address stops the batch before it starts, not item by item
        if not (api_key or os.environ.get(KEY_ENV)):
            raise ConfigurationError(
                f"The remote backend needs an API key: pass --api-key or set {KEY_ENV} "
                "(or choose --engine local)."
            )
        if not (base_url or os.environ.get(URL_ENV)):
            raise ConfigurationError(
                "The remote backend needs the service's address: pass --base-url or set "
                f"{URL_ENV} (for the local server: clothseg serve)."
            )
        return _RemoteSegmenter(kwargs, api_options, timeout=timeout)
    if backend == "replay":
        if replay_dir is None and not os.environ.get(REPLAY_DIR_ENV):
            raise ConfigurationError(
                "The replay engine needs the folder of recorded results: pass --replay-dir "
                f"or set {REPLAY_DIR_ENV}."
            )
        if replay_dir is not None:
            options.setdefault("replay_dir", replay_dir)

    name = backend
    return _EngineSegmenter(lambda: engines.get_engine(name, **options), name, api_options)


def _input_fingerprint(item: BatchItem) -> str | None:
    """Size and modification time of a local input: a replaced photo is redone."""
    if item.is_url:
        return None
    try:
        st = os.stat(item.source)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def segment_job(
    segmenter: Segmenter,
    out_dir: str | os.PathLike[str],
    *,
    backend: str,
    api_options: Mapping[str, int],
    engine: Mapping[str, Any] | None = None,
) -> Job:
    """The :class:`Job` that segments each item with ``segmenter`` and saves it.

    The job's options (recorded per manifest line) are the API options, the
    backend's name and, when it has one, the engine's identity (``engine``: its
    model's checksum and settings): changing any of them redoes earlier items.
    """
    out = Path(out_dir)

    def work(item: BatchItem) -> ItemOutput:
        t0 = time.perf_counter()
        result = segmenter(item)
        t1 = time.perf_counter()
        folder = out / item.key
        # timings and task go to the manifest line: the folder is the same every run
        saved = result.save(folder, reproducible=True)
        checksums = {f"{item.key}/{name}": sha for name, sha in saved.files.items()}
        timings = dict(result.timings)
        timings.update(segment_total=t1 - t0, save=time.perf_counter() - t1)
        return ItemOutput(
            checksums=checksums,
            timings=timings,
            notes=tuple(result.notes),
            task=None if result.task is None else result.task.to_dict(),
        )

    return Job(
        "segment",
        work,
        out,
        options={
            **dict(api_options),
            "backend": backend,
            **({"engine": dict(engine)} if engine else {}),
        },
        fingerprint=_input_fingerprint,
    )


def segment_batch(
    items: Sequence[BatchItem],
    out_dir: str | os.PathLike[str],
    options: Options | None = None,
    batch: BatchOptions | None = None,
    *,
    engine: str | Engine | None = "auto",
    api_key: str | None = None,
    base_url: str | None = None,
    replay_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    engine_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    passed_over: Sequence[SkippedInput] = (),
    **settings: Any,
) -> BatchSummary:
    """Segment ``items`` into ``out_dir``, resuming an earlier run of the same batch.

    Parameters
    ----------
    items
        From :func:`~clothseg_tools.batch.discover.discover_inputs`.
    out_dir
        Output root: ``<out_dir>/<key>/`` per item and ``<out_dir>/manifest.jsonl``.
    options
        The API's options (:class:`~clothseg_tools.contract.Options`: class_type,
        output_type, detail_mode, quality); default the contract's defaults.
    batch
        How the batch runs (:class:`~clothseg_tools.batch.BatchOptions`: workers,
        resume, rate limit, shard, executor); default threads, as many as
        :func:`default_workers` gives for the backend.
    engine
        ``"auto"`` (remote with a key, else the default engine), ``"remote"``,
        ``"local"``, ``"replay"``, or an Engine instance (shared by all workers).
    api_key, base_url, timeout, max_retries
        Remote backend settings.
    replay_dir, engine_options
        In-process engine settings.
    progress, stop
        See :func:`~clothseg_tools.batch.runner.run_job`.
    passed_over
        Files discovery passed over (:attr:`Discovery.skipped
        <clothseg_tools.batch.discover.Discovery.skipped>`): each gets a manifest line
        with ``status`` ``"skipped"`` and its reason (in the part of the shard its path
        falls to), and is listed in
        :attr:`BatchSummary.passed_over <clothseg_tools.batch.runner.BatchSummary.passed_over>`.
    **settings
        Single fields of ``options`` or ``batch`` (``class_type=4``, ``workers=2``,
        ``shard="1/3"``, ``executor="ray"`` ...) replacing theirs.

    Returns
    -------
    BatchSummary

    Raises
    ------
    ConfigurationError
        Nothing ran: the backend could not be set up.
    ValueError
        An API option outside its documented values.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from clothseg_tools import MaskSet
    >>> from clothseg_tools._io import write_png
    >>> from clothseg_tools.engines.base import Engine, EngineOutput
    >>> from clothseg_tools.batch import discover_inputs
    >>> class TopHalf(Engine):
    ...     name = "top-half"
    ...     def _segment(self, image, *, classes, **_):
    ...         m = np.zeros(image.shape[:2], np.uint8); m[: len(m) // 2] = 255
    ...         return EngineOutput(MaskSet({c: m for c in classes}), {})
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> write_png(tmp / "in" / "a.png", np.full((8, 8, 3), 200, np.uint8))
    >>> _ = (tmp / "in" / "b.png").write_bytes(b"not an image")
    >>> items = discover_inputs([tmp / "in"])
    >>> s = segment_batch(items, tmp / "out", engine=TopHalf(), class_type=3)
    >>> s.done, s.failed, dict(s.errors)
    (1, 1, {'UnsupportedFormatError': 1})
    >>> sorted(p.name for p in (tmp / "out" / "a").iterdir())
    ['body.png', 'face.png', 'hair.png', 'head.png', 'masks.json', 'result.json']
    """
    unknown = set(settings) - set(OPTION_NAMES) - {f.name for f in dataclasses.fields(BatchOptions)}
    if unknown:
        raise TypeError(f"segment_batch() got unexpected keyword arguments: {sorted(unknown)}")
    api = dataclasses.replace(
        options or Options(), **{k: v for k, v in settings.items() if k in OPTION_NAMES}
    )
    run_settings = {k: v for k, v in settings.items() if k not in OPTION_NAMES}
    if run_settings.get("workers", 0) is None:
        del run_settings["workers"]  # None: the backend's default
    api_options = api.as_dict()
    if isinstance(engine, str) or engine is None:
        backend: str | Engine = choose_backend(engine, api_key=api_key or os.environ.get(KEY_ENV))
    else:
        backend = engine
    segmenter = make_segmenter(
        backend,
        api_options=api_options,
        api_key=api_key,
        base_url=base_url,
        replay_dir=replay_dir,
        timeout=timeout,
        max_retries=max_retries,
        engine_options=engine_options,
    )
    try:
        identity = segmenter.identity() if isinstance(segmenter, _EngineSegmenter) else None
        job = segment_job(
            segmenter, out_dir, backend=segmenter.name, api_options=api_options, engine=identity
        )
        run = dataclasses.replace(
            batch or BatchOptions(workers=default_workers(segmenter.name)), **run_settings
        )
        skip_records = record_passed_over(job, passed_over, run.shard)
        summary = run_job(job, items, run, progress=progress, stop=stop)
        summary.passed_over = skip_records
        return summary
    finally:
        segmenter.close()


def record_passed_over(
    job: Job, passed_over: Sequence[SkippedInput], shard: Shard | None = None
) -> list[dict[str, Any]]:
    """Write a ``"skipped"`` manifest line per file passed over; return the lines.

    A file whose latest line already says skipped for the same reason is not written
    again, so reruns do not grow the manifest. With ``shard``, only the files that fall
    to it (by a hash of their path) are written, into its manifest part.
    """
    if shard is not None:
        passed_over = [e for e in passed_over if shard_of(e.source, shard.count) == shard.index]
    if not passed_over:
        return []
    name = job.manifest_name or job.command
    latest = read_manifests(job.out_dir, name)
    path = manifest_path(job.out_dir, name, shard.pair if shard is not None else None)
    records = []
    with Manifest(path) as manifest:
        for entry in passed_over:
            record = {
                "source": entry.source,
                "key": None,
                "command": job.command,
                "status": "skipped",
                "reason": entry.reason,
            }
            old = latest.get(entry.source) or {}
            if old.get("status") != "skipped" or old.get("reason") != entry.reason:
                manifest.append({**record, "finished_at": now_iso()})
            records.append(record)
    return records
