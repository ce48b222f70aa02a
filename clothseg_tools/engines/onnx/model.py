"""Reading an exported human-parsing model: its files, its input, its labels, its session.

A model is a ``.onnx`` file or a folder in the layout ``optimum-cli export onnx`` writes:

``model.onnx``
    the network;
``config.json``
    the model config, whose ``id2label`` names the output channels;
``preprocessor_config.json``
    the image processor's ``size``, ``image_mean``, ``image_std``, ``do_rescale`` /
    ``rescale_factor`` and ``do_normalize``.

Next to a bare ``.onnx`` file the two JSON files are read too when they are there.
Whatever they do not say comes from keyword options, and the rest from the model
itself: the input's name, its layout (channels first or last) and its fixed or dynamic
size are read from the graph.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import LabelSetError, ModelError
from ...labelsets import LabelSet, get_labelset, make_labelset, match_labelset

__all__ = ["ModelSpec", "find_model_file", "load_session", "read_spec"]

logger = logging.getLogger("clothseg_tools")

MODEL_NAME = "model.onnx"
CONFIG_NAME = "config.json"
PREPROCESSOR_NAME = "preprocessor_config.json"

#: ImageNet statistics, what SegFormer's processor and most parsing models use.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Long side a model with a dynamic input runs at when nothing says otherwise.
DEFAULT_SIZE = 512

_ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(float16)": np.float16}

SizeLike = int | Sequence[int] | None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine needs to feed the model and read its answer.

    Attributes
    ----------
    path : Path
        The ``.onnx`` file.
    labelset : LabelSet
        Names of the output channels, in order.
    size : tuple of int
        (height, width) the photo is fitted into (the input size when it is fixed).
    fixed : bool
        Whether the model's input height and width are fixed numbers.
    mean, std : tuple of float
        Per-channel normalisation after rescaling.
    rescale : float
        Factor from 0..255 pixel values to the model's range (1/255, or 1 for none).
    bgr : bool
        Feed channels as blue, green, red (SCHP's convention).
    input_name, output_name : str
        Graph names of the image input and the logits output.
    channels_last : bool
        The input is (N, H, W, 3) rather than (N, 3, H, W).
    input_dtype : numpy dtype
        float32 or float16.
    """

    path: Path
    labelset: LabelSet
    size: tuple[int, int]
    fixed: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float
    bgr: bool
    input_name: str
    output_name: str
    channels_last: bool
    input_dtype: np.dtype[Any]


def find_model_file(model: str | os.PathLike[str]) -> Path:
    """The ``.onnx`` file of ``model``: the file itself, or ``model.onnx`` in a folder.

    Raises
    ------
    ModelError
        Nothing at that path, or a folder without a ``.onnx`` file (or with several and
        no ``model.onnx``).
    """
    path = Path(model)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / MODEL_NAME).is_file():
            return path / MODEL_NAME
        found = sorted(path.glob("*.onnx"))
        if len(found) == 1:
            return found[0]
        what = f"{len(found)} .onnx files ({', '.join(p.name for p in found)})" if found else (
            "no .onnx file"
        )
        raise ModelError(
            f"Model folder {path} has {what}. Pass the .onnx file itself (--model "
            f"{path}/<file>.onnx), or export the model there as {MODEL_NAME} "
            "(optimum-cli export onnx writes that layout)."
        )
    raise ModelError(
        f"Model {path} does not exist. Pass a .onnx file or an exported model folder "
        f"holding {MODEL_NAME}, {CONFIG_NAME} and {PREPROCESSOR_NAME} (model=PATH, --model PATH)."
    )


def load_session(path: Path, providers: Sequence[Any] | None = None) -> Any:
    """An onnxruntime session for ``path`` (CPU unless ``providers`` say otherwise).

    Raises
    ------
    ModelError
        The file is not a model onnxruntime can load, or a provider is not available.
    """
    import onnxruntime as ort  # the engine's extra; imported when a model is loaded

    wanted = list(providers) if providers else ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in wanted]
    missing = [n for n in names if n not in available]
    if missing:
        raise ModelError(
            f"Execution provider(s) {missing} are not available in this onnxruntime "
            f"(available: {', '.join(available)}). Install the build that has them "
            "(onnxruntime-gpu for CUDA) or leave providers= out for the CPU."
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(
            f"{path} could not be loaded as an ONNX model ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}). "
            "Check that the file is a complete .onnx export."
        ) from exc


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not readable JSON ({exc}); fix or remove it.") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path} must hold a JSON object.")
    return obj


def _pair(value: Any, what: str, source: str) -> tuple[int, int]:
    """(height, width) from an int, a pair, or a processor's size dict."""
    if isinstance(value, Mapping):
        if "height" in value and "width" in value:
            value = (value["height"], value["width"])
        elif "shortest_edge" in value:
            value = value["shortest_edge"]
        else:
            raise ModelError(f"{source}: {what} {dict(value)} has no height/width.")
    try:
        if isinstance(value, (int, np.integer)):
            pair = (int(value), int(value))
        else:
            h, w = (int(v) for v in value)
            pair = (h, w)
    except (TypeError, ValueError):
        raise ModelError(
            f"{source}: {what} must be a number or (height, width), got {value!r}."
        ) from None
    if min(pair) < 1:
        raise ModelError(f"{source}: {what} must be positive, got {pair}.")
    return pair


def _triple(value: Any, what: str, source: str) -> tuple[float, float, float]:
    try:
        if isinstance(value, (int, float)):
            values = [float(value)] * 3
        else:
            values = [float(v) for v in value]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3:
        raise ModelError(f"{source}: {what} must be three numbers (R, G, B), got {value!r}.")
    if what == "std" and min(values) <= 0:
        raise ModelError(f"{source}: std must be positive, got {values}.")
    return values[0], values[1], values[2]


def _input_layout(session: Any, path: Path) -> tuple[str, bool, tuple[int, int] | None, Any]:
    """Input name, channels_last, fixed (h, w) or None, dtype, from the graph."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the "
            "onnx engine feeds one image tensor. Export the model with the image as its "
            "only input."
        )
    spec = inputs[0]
    shape = list(spec.shape)
    if len(shape) != 4:
        raise ModelError(
            f"{path}: input {spec.name!r} has shape {shape}; expected an image batch "
            "(N, 3, H, W) or (N, H, W, 3)."
        )
    if shape[1] == 3:
        channels_last, hw = False, shape[2:4]
    elif shape[3] == 3:
        channels_last, hw = True, shape[1:3]
    else:
        raise ModelError(
            f"{path}: input {spec.name!r} has shape {shape}, with no axis of 3 colour "
            "channels in position 1 or 3."
        )
    dtype = _ONNX_FLOATS.get(spec.type)
    if dtype is None:
        raise ModelError(
            f"{path}: input {spec.name!r} is {spec.type}; the onnx engine feeds float or "
            "float16 pixels."
        )
    fixed = tuple(hw) if all(isinstance(d, int) and d > 0 for d in hw) else None
    return spec.name, channels_last, fixed, np.dtype(dtype)


def _labelset(
    labels: Any, config: dict[str, Any] | None, config_path: Path, path: Path
) -> LabelSet:
    """The label set from ``labels=``, else from ``config.json``'s ``id2label``."""
    if labels is not None:
        if isinstance(labels, (str, os.PathLike, LabelSet)):
            try:
                return get_labelset(labels)
            except LabelSetError as exc:  # a setting of the engine: a configuration error
                raise ModelError(f"labels={labels!r} for {path}: {exc}") from None
        names = [str(n) for n in labels]
        try:
            return match_labelset(names)
        except LabelSetError:
            return make_labelset(path.stem, names)
    id2label = (config or {}).get("id2label")
    if not id2label:
        raise ModelError(
            f"{path}: no label names. There is no {config_path.name} with id2label beside "
            "the model; pass the label set it was trained on (labels='atr', --labels atr; "
            "or a .json file, see load_labelset)."
        )
    try:
        return match_labelset(id2label)
    except LabelSetError as exc:
        raise ModelError(
            f"{config_path}: the model's id2label does not match a known label set. {exc}"
        ) from None


def read_spec(
    model: str | os.PathLike[str],
    session: Any,
    *,
    labels: Any = None,
    size: SizeLike = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    rescale: float | None = None,
    bgr: bool = False,
) -> ModelSpec:
    """Everything about feeding ``model``, from its files, its graph and the options."""
    path = find_model_file(model)
    folder = path.parent
    config = _read_json(folder / CONFIG_NAME)
    prep = _read_json(folder / PREPROCESSOR_NAME) or {}
    prep_source = str(folder / PREPROCESSOR_NAME)
    input_name, channels_last, fixed, dtype = _input_layout(session, path)
    if fixed is not None:
        if size is not None and _pair(size, "size", "size=") != fixed:
            raise ModelError(
                f"{path} has a fixed input of {fixed[0]} x {fixed[1]} pixels, but size={size} "
                "was given; leave size out for this model."
            )
        run_size = fixed
    elif size is not None:
        run_size = _pair(size, "size", "size=")
    elif "size" in prep:
        run_size = _pair(prep["size"], "size", prep_source)
    else:
        run_size = (DEFAULT_SIZE, DEFAULT_SIZE)
    normalize = prep.get("do_normalize", True)
    if mean is None:
        mean = prep.get("image_mean", IMAGENET_MEAN) if normalize else (0.0, 0.0, 0.0)
    if std is None:
        std = prep.get("image_std", IMAGENET_STD) if normalize else (1.0, 1.0, 1.0)
    if rescale is None:
        do_rescale = prep.get("do_rescale", True)
        rescale = float(prep.get("rescale_factor", 1 / 255)) if do_rescale else 1.0
    outputs = session.get_outputs()
    return ModelSpec(
        path=path,
        labelset=_labelset(labels, config, folder / CONFIG_NAME, path),
        size=run_size,
        fixed=fixed is not None,
        mean=_triple(mean, "mean", f"mean (from mean= or {PREPROCESSOR_NAME})"),
        std=_triple(std, "std", f"std (from std= or {PREPROCESSOR_NAME})"),
        rescale=float(rescale),
        bgr=bool(bgr),
        input_name=input_name,
        output_name=outputs[0].name,
        channels_last=channels_last,
        input_dtype=dtype,
    )
