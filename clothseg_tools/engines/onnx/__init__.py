"""The ``onnx`` engine: any human-parsing model exported to ONNX (extra ``[onnx]``).

``get_engine("onnx", model=PATH)`` with a ``.onnx`` file or an exported model folder;
see :mod:`.engine` for what happens to a photo and :mod:`.model` for what is read from
the model's files.
"""

from __future__ import annotations

from .engine import OnnxEngine
from .model import ModelSpec, find_model_file

__all__ = ["ModelSpec", "OnnxEngine", "find_model_file"]
