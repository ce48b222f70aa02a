"""Where the onnx engine's time goes, and how much memory its post-processing takes.

Run: ``python benchmarks/bench_onnx.py`` (``--sizes 1024`` for a quick run).

The benchmark builds a small SegFormer-shaped model with ``onnx.helper`` (18 labels, a
3 x 3 convolution stack, logits at a quarter of the input, dynamic input size) and runs
the engine on a synthetic photo at each size. It prints, per size:

- ``pre``: fitting the photo (resize, normalise, pad) into the 512-pixel input;
- ``model``: onnxruntime's run alone, on the same input;
- ``post``: cropping the logits, the arg-max of the upsampled logits, the softmax and
  the twelve soft class masks at the photo's size;
- ``post / copyto``: the post time as a multiple of one ``np.copyto`` of the final
  (12, H, W) uint8 stack, the named baseline: the least any post-processing that writes
  that stack can cost;
- ``parts``: splitting the garment classes of a parsing with six garments (four tops,
  two skirts) into per-garment parts (``output_type`` 2 or 3), also as a multiple of the
  same ``np.copyto``.

At 4096 x 4096 it also measures the post-processing's peak allocation with
``tracemalloc`` against the final stack (12 x 4096 x 4096 bytes, about 200 MB): the
bound is 2.5 times the stack, which holds only because no full-size float array of the
18 channels is ever made. The script exits with status 1 when the bound is broken.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from _common import best_time
from onnx import TensorProto, helper, numpy_helper

import clothseg_tools as cst
from clothseg_tools.engines._parts import parsing_parts
from clothseg_tools.engines.onnx import OnnxEngine

N_LABELS = 18
PEAK_BOUND = 2.5


def segformer_like(path: Path) -> None:
    """Two 3 x 3 convolutions (16 features), a stride-4 pooling, a 1 x 1 head: logits
    at a quarter of the input, like SegFormer's decode head, with fixed random weights."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (16, 16, 3, 3)).astype(np.float32)
    head = rng.normal(0, 0.5, (N_LABELS, 16, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["pixel_values", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "head"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "segformer_like",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, N_LABELS, "oh", "ow"])],
        initializer=[
            numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (head, "head"))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def photo(size: int) -> np.ndarray:
    """A smooth synthetic photo (gradients and a disc), so the model's answer varies."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([x, y, 1 - x * y], axis=-1)
    img[(x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1] *= 0.3
    return (img * 255).astype(np.uint8)


def measure(engine: OnnxEngine, size: int, repeat: int) -> dict[str, float]:
    image = photo(size)
    fit = engine.spec.size
    canvas = engine._dynamic_canvas(fit, (size, size))
    tensor, (rh, rw) = engine._canvas(image, fit, canvas)
    logits = engine._logits(tensor, mirrored=False)
    _, lh, lw = logits.shape
    extent = (rh * lh / canvas[0], rw * lw / canvas[1])

    def post() -> cst.MaskSet:
        return engine._post(logits, extent, (size, size)).to_maskset()

    stack = post().stack()
    # a photo of six garments (four tops, two skirts), as label map and class masks
    labels = np.zeros((size, size), np.uint8)
    q = size // 8
    for i in range(4):
        labels[q : 3 * q, (2 * i) * q : (2 * i + 1) * q] = 4  # Upper-clothes
    labels[5 * q : 7 * q, q : 3 * q] = labels[5 * q : 7 * q, 5 * q : 7 * q] = 5  # Skirt
    garments = cst.Parsing(labels, "atr")
    garment_masks = garments.to_maskset()
    target = np.empty_like(stack)
    return {
        "pre": best_time(lambda: engine._canvas(image, fit, canvas), repeat),
        "model": best_time(lambda: engine._run(tensor), repeat),
        "post": best_time(post, repeat),
        "copyto": best_time(lambda: np.copyto(target, stack), repeat),
        "parts": best_time(lambda: parsing_parts(garments, garment_masks), repeat),
        "n_parts": float(len(parsing_parts(garments, garment_masks))),
        "stack_bytes": float(stack.nbytes),
        "post_fn": post,  # type: ignore[dict-item]
    }


def peak_of(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated (tracemalloc) while ``fn`` runs, its result included."""
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        segformer_like(path)
        engine = OnnxEngine(path, labels="atr", size=512)
        print(f"model: {N_LABELS} labels, input 512 px (dynamic), logits at 1/4; "
              f"best of {args.repeat}")  # fmt: skip
        columns = ("pre", "model", "post", "copyto")
        print(
            f"{'photo':>11} " + " ".join(f"{c:>8}" for c in columns) + f" {'post/copyto':>12}"
            f" {'parts':>8} {'parts/copyto':>12}"
        )
        status = 0
        for size in args.sizes:
            m = measure(engine, size, args.repeat)
            print(
                f"{size:>5}x{size:<5} {m['pre'] * 1e3:>6.1f}ms {m['model'] * 1e3:>6.1f}ms "
                f"{m['post'] * 1e3:>6.1f}ms {m['copyto'] * 1e3:>6.1f}ms "
                f"{m['post'] / m['copyto']:>11.1f}x {m['parts'] * 1e3:>6.1f}ms "
                f"{m['parts'] / m['copyto']:>11.1f}x ({m['n_parts']:.0f} parts)"
            )
            if size == 4096:
                peak = peak_of(m["post_fn"])  # type: ignore[arg-type]
                ratio = peak / m["stack_bytes"]
                verdict = "ok" if ratio <= PEAK_BOUND else "OVER THE BOUND"
                print(
                    f"post-processing peak at 4096x4096: {peak / 2**20:.0f} MiB = {ratio:.2f}x "
                    f"the final stack ({m['stack_bytes'] / 2**20:.0f} MiB); bound "
                    f"{PEAK_BOUND}x: {verdict}"
                )
                status = max(status, int(ratio > PEAK_BOUND))
        engine.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
