"""Segmentation engines behind one interface, and their registry.

Engines are registered by name with a factory, or with a ``"module:attr"`` string so
that heavy dependencies (mediapipe for ``local``) are imported only when the engine is
asked for.

Examples
--------
>>> from clothseg_tools.engines import available_engines
>>> "replay" in available_engines()
True
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from ..contract import KEY_ENV
from ..errors import ConfigurationError, EngineUnavailableError, install_hint
from .base import Engine, EngineOutput

__all__ = [
    "Engine",
    "EngineOutput",
    "available_engines",
    "default_engine_name",
    "get_engine",
    "register_engine",
]

_REGISTRY: dict[str, Callable[..., Engine] | str] = {
    "replay": "clothseg_tools.engines.replay:ReplayEngine",
    "local": "clothseg_tools.engines.local:LocalEngine",
    "onnx": "clothseg_tools.engines.onnx:OnnxEngine",
}

#: Engines whose dependencies are published for some Pythons only:
#: name -> (oldest, newest, what is missing elsewhere).
_PYTHONS: dict[str, tuple[tuple[int, int], tuple[int, int], str]] = {
    "local": ((3, 9), (3, 12), "mediapipe 0.10.21"),
}


def register_engine(name: str, factory: Callable[..., Engine] | str) -> None:
    """Register an engine factory (a callable, or ``"module:attr"`` imported lazily).

    Examples
    --------
    >>> register_engine("replay", "clothseg_tools.engines.replay:ReplayEngine")
    """
    _REGISTRY[name] = factory


def available_engines() -> tuple[str, ...]:
    """Names of the registered engines (whether or not their dependencies are installed)."""
    return tuple(_REGISTRY)


def _resolve(name: str) -> Callable[..., Engine]:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown engine {name!r}; choose one of {', '.join(_REGISTRY)}."
        ) from None
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EngineUnavailableError(_unavailable(name, exc)) from exc
        factory = getattr(module, attr)
    return factory


def _unavailable(name: str, exc: ImportError) -> str:
    """Why engine ``name`` cannot load here, and what to do about it."""
    missing = exc.name or str(exc)
    if name in _PYTHONS:
        oldest, newest, package = _PYTHONS[name]
        here = sys.version_info[:2]
        if not oldest <= here <= newest:
            return (
                f"The {name!r} engine needs {package}, which is published for Python "
                f"{oldest[0]}.{oldest[1]} to {newest[0]}.{newest[1]} only; this is Python "
                f"{here[0]}.{here[1]}. Run it on one of those Pythons, or use another engine: "
                "'onnx' with a human-parsing model, 'replay' with recorded results, or the "
                f"service (set {KEY_ENV})."
            )
    return (
        f"The {name!r} engine needs packages that are not installed ({missing}). "
        f"Install them with: {install_hint(name)}"
    )


def get_engine(name: str | None = None, **options: Any) -> Engine:
    """Build the engine ``name`` (default: :func:`default_engine_name`) with ``options``.

    Raises
    ------
    ConfigurationError
        Unknown name.
    EngineUnavailableError
        The engine's optional dependencies are missing (the message says what to install).
    """
    return _resolve(name or default_engine_name())(**options)


def default_engine_name() -> str:
    """``"local"`` when its dependencies are importable, else ``"replay"``."""
    # find_spec, not import: importing mediapipe takes about a second
    return "local" if importlib.util.find_spec("mediapipe") is not None else "replay"
