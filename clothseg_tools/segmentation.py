"""One photo in, one :class:`~clothseg_tools.result.SegmentationResult` out, from
whichever segmenter is configured.

:func:`segment` is the library's one entry point for a single photo: the service when an
API key is configured, the default in-process engine otherwise, or the one ``engine=``
names. :func:`choose_engine` is the rule it follows, shared with ``clothseg segment``.

Examples
--------
>>> choose_engine("auto", api_key="k"), choose_engine("local", api_key="k")
('remote', 'local')
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import engines
from .contract import KEY_ENV, REPLAY_DIR_ENV, URL_ENV, check_options
from .errors import ConfigurationError, EngineUnavailableError, install_hint
from .result import segment_with_engine

if TYPE_CHECKING:
    from .engines.base import Engine
    from .result import SegmentationResult

__all__ = ["REMOTE", "choose_engine", "segment"]

#: The name ``engine=`` and ``--engine`` give the service.
REMOTE = "remote"


def choose_engine(engine: str | None = "auto", *, api_key: str | None = None) -> str:
    """The segmenter to use: ``engine`` when named, else the service when a key is set.

    Without a key the default in-process engine answers: ``local`` when mediapipe is
    installed, else ``replay`` when ``CLOTHSEG_REPLAY_DIR`` names recorded results.

    Parameters
    ----------
    engine
        ``"auto"`` (or ``None``), ``"remote"``, or an engine's name.
    api_key
        The key given explicitly; ``CLOTHSEG_API_KEY`` counts too.

    Returns
    -------
    str
        ``"remote"`` or an engine name.

    Raises
    ------
    EngineUnavailableError
        No key, and no in-process engine that can run (the message says what to set or
        install).
    """
    if engine not in (None, "auto"):
        return str(engine)
    if api_key or os.environ.get(KEY_ENV):
        return REMOTE
    name = engines.default_engine_name()
    if name != "local" and not os.environ.get(REPLAY_DIR_ENV):
        # without a key the local engine is the only one that needs nothing more
        raise EngineUnavailableError(
            "No API key is configured and the local engine is not installed. Set "
            f"{KEY_ENV} (and {URL_ENV}) to use the service, or install the "
            f"offline engine with: {install_hint('local')}"
        )
    return name


def segment(
    image: Any,
    *,
    engine: str | Engine | None = None,
    class_type: int = 1,
    output_type: int = 1,
    detail_mode: int = 1,
    quality: int = 1,
    api_key: str | None = None,
    base_url: str | None = None,
    timeout: float | None = None,
    **engine_options: Any,
) -> SegmentationResult:
    """Segment one photo with the service, or offline when no API key is configured.

    Parameters
    ----------
    image
        A path, bytes, binary file object, PIL image or (H, W, 3) uint8 array; with the
        service also an http(s) URL.
    engine
        ``None`` or ``"auto"`` (default): the service when an API key is configured
        (``api_key`` or ``CLOTHSEG_API_KEY``), else the default in-process engine (see
        :func:`choose_engine`). ``"remote"`` forces the service; an engine name
        (``"local"``, ``"replay"`` ...) or an :class:`~clothseg_tools.engines.base.Engine`
        instance segments in-process.
    class_type, output_type, detail_mode, quality
        The API's options, with the service's defaults whatever the engine
        (``class_type=4`` asks for all twelve classes).
    api_key, base_url, timeout
        For the service: as :class:`~clothseg_tools.Client` and
        :meth:`~clothseg_tools.Client.segment` take them (defaults from
        ``CLOTHSEG_API_KEY``, ``CLOTHSEG_BASE_URL``; 300 s).
    **engine_options
        Options of the engine named by ``engine`` (``replay_dir=`` for ``replay``).

    Returns
    -------
    SegmentationResult
        Its ``engine`` says which answered: ``"remote"`` for the service, else the
        engine's name.

    Raises
    ------
    ConfigurationError
        No key and no engine that can run, a missing service address, options given to
        the service that only engines take.
    InputError, APIError, EngineError
        The photo, the service or the engine failed (typed subclasses).

    Notes
    -----
    An engine named here is built for this call and closed after it (the local engine
    takes about a second to start). For many photos keep one from
    :func:`~clothseg_tools.get_engine` and pass it as ``engine=``, or run a batch
    (:func:`~clothseg_tools.batch.segment.segment_batch`, ``clothseg segment``).

    Examples
    --------
    >>> import numpy as np
    >>> import clothseg_tools as cst
    >>> from clothseg_tools.engines.base import Engine, EngineOutput
    >>> class TopHalf(Engine):
    ...     name = "top-half"
    ...     def _segment(self, image, *, classes, **_):
    ...         m = np.zeros(image.shape[:2], np.uint8); m[: len(m) // 2] = 255
    ...         return EngineOutput(cst.MaskSet({c: m for c in classes}), {})
    >>> result = cst.segment(np.zeros((4, 6, 3), np.uint8), engine=TopHalf(), class_type=3)
    >>> result.engine, result.masks.classes
    ('top-half', ('hair', 'face', 'head', 'body'))
    """
    options: dict[str, Any] = check_options(
        class_type=class_type, output_type=output_type, detail_mode=detail_mode, quality=quality
    )
    if isinstance(engine, engines.Engine):
        return segment_with_engine(engine, image, **options)
    name = choose_engine(engine, api_key=api_key)
    if name == REMOTE:
        if engine_options:
            raise ConfigurationError(
                f"The service takes no engine options ({', '.join(sorted(engine_options))}); "
                "pass engine='local' (or another engine) to use them."
            )
        # lazy: the client pulls in requests
        from .api import Client

        call: dict[str, Any] = {} if timeout is None else {"timeout": float(timeout)}
        with Client(api_key=api_key, base_url=base_url) as client:
            return client.segment(image, **options, **call)
    built = engines.get_engine(name, **engine_options)
    try:
        return segment_with_engine(built, image, **options)
    finally:
        built.close()
