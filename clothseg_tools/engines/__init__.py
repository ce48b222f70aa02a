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
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError, EngineUnavailableError
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
            raise EngineUnavailableError(
                f"The {name!r} engine needs packages that are not installed ({exc.name or exc}). "
                f"Install them with: pip install 'clothseg_tools[{name}]'"
            ) from exc
        factory = getattr(module, attr)
    return factory


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
