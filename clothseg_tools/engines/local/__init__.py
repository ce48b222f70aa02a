"""The local engine: offline segmentation into the twelve API classes with mediapipe.

Install with ``pip install 'clothseg_tools[local]'`` (from a checkout:
``pip install -e ".[local]"``), on Python 3.9 to 3.12 as mediapipe 0.10.21 is published.
The engine is registered as ``"local"`` (``get_engine("local")``); see
:class:`LocalEngine` for what it does and README.md for where it is weak.

Modules: :mod:`.models` (loading and running the mediapipe models), :mod:`.scene`
(colours and geometry), :mod:`.parsing` and :mod:`.garments` (the classes at working
resolution), :mod:`.refine` (the guided filter), :mod:`.engine` (the engine itself).
"""

from __future__ import annotations

from .engine import CLASS_LEAVES, LocalEngine

__all__ = ["CLASS_LEAVES", "LocalEngine"]
