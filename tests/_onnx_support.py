"""Small human-parsing models with known answers, built with ``onnx.helper``.

The "colour parser" scores every pixel with a 1 x 1 convolution of its colour and then
averages 4 x 4 cells, like the stride-4 logits of SegFormer:

- background scores 10 x (1 - red - green - blue),
- ``RED`` (default ATR 4, Upper-clothes) scores 10 x red,
- ``GREEN`` (default 6, Pants) scores 10 x green,
- ``BLUE`` (default 11, Face) scores 10 x blue,
- every other label scores -10.

With pixels in 0..1 (no normalisation), a pure red region is Upper-clothes, green is
Pants, blue is Face and black is background, and the soft values follow from the
softmax of those scores (:func:`expected_probs`). Between two regions the two labels'
scores cross half-way, so the arg-max boundary of upsampled logits is where the
photo's boundary is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from clothseg_tools.labelsets import get_labelset

RED, GREEN, BLUE = 4, 6, 11
ATR_NAMES = list(get_labelset("atr").labels)


def colour_weights(n: int, red: int = RED, green: int = GREEN, blue: int = BLUE):
    w = np.zeros((n, 3), np.float32)
    b = np.full(n, -10.0, np.float32)
    w[0], b[0] = -10.0, 10.0
    for label, channel in ((red, 0), (green, 1), (blue, 2)):
        w[label, channel] = 10.0
        b[label] = 0.0
    return w, b


def expected_probs(rgb01: Sequence[float], n: int = 18) -> np.ndarray:
    """Softmax of the colour parser's scores for one colour in 0..1."""
    w, b = colour_weights(n)
    logits = w @ np.asarray(rgb01, np.float64) + b
    e = np.exp(logits - logits.max())
    return e / e.sum()


def colour_parser(
    *,
    n: int = 18,
    size: tuple[int, int] | None = None,
    channels_last: bool = False,
    stride: int = 4,
    float16: bool = False,
) -> onnx.ModelProto:
    """The colour parser; ``size`` fixes the input (H, W), else it is dynamic."""
    h, w = size if size is not None else ("height", "width")
    elem = TensorProto.FLOAT16 if float16 else TensorProto.FLOAT
    shape_in = [1, h, w, 3] if channels_last else [1, 3, h, w]
    weights, bias = colour_weights(n)
    nodes = []
    x = "pixel_values"
    if float16:
        nodes.append(helper.make_node("Cast", [x], ["x32"], to=TensorProto.FLOAT))
        x = "x32"
    if channels_last:
        nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
        x = "nchw"
    nodes += [
        helper.make_node("Conv", [x, "W", "B"], ["scores"], kernel_shape=[1, 1]),
        helper.make_node(
            "AveragePool", ["scores"], ["logits"], kernel_shape=[stride, stride],
            strides=[stride, stride],
        ),
    ]  # fmt: skip
    out_shape = [1, n, h // stride, w // stride] if size is not None else [1, n, "oh", "ow"]
    graph = helper.make_graph(
        nodes,
        "colour_parser",
        [helper.make_tensor_value_info("pixel_values", elem, shape_in)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        initializer=[
            numpy_helper.from_array(weights.reshape(n, 3, 1, 1), "W"),
            numpy_helper.from_array(bias, "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_folder(
    folder: Path,
    model: onnx.ModelProto,
    *,
    id2label: dict[str, str] | bool | None = True,
    size: int | dict[str, int] | None = 64,
    normalize: bool = False,
) -> Path:
    """Write ``model`` in the layout ``optimum-cli export onnx`` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    if id2label is True:
        id2label = {str(i): name for i, name in enumerate(ATR_NAMES)}
    if id2label:
        config = {"model_type": "segformer", "id2label": id2label,
                  "label2id": {v: int(k) for k, v in id2label.items()}}  # fmt: skip
        (folder / "config.json").write_text(json.dumps(config))
    prep: dict[str, object] = {
        "image_processor_type": "SegformerImageProcessor",
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": normalize,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }
    if size is not None:
        prep["size"] = size if isinstance(size, dict) else {"height": size, "width": size}
    (folder / "preprocessor_config.json").write_text(json.dumps(prep))
    return folder


def regions_photo(
    h: int, w: int, cell: int, *, band: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A photo of coloured stripes and the ATR label each pixel should get.

    Columns of ``cell`` pixels cycle red, green, black, blue; with ``band`` the bottom
    quarter is red. Returns (photo, labels).
    """
    colours = [((255, 0, 0), RED), ((0, 255, 0), GREEN), ((0, 0, 0), 0), ((0, 0, 255), BLUE)]
    photo = np.zeros((h, w, 3), np.uint8)
    labels = np.zeros((h, w), np.uint8)
    for x0 in range(0, w, cell):
        colour, label = colours[(x0 // cell) % 4]
        photo[:, x0 : x0 + cell] = colour
        labels[:, x0 : x0 + cell] = label
    if band:
        photo[3 * h // 4 :] = (255, 0, 0)
        labels[3 * h // 4 :] = RED
    return photo, labels
