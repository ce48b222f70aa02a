"""``OnnxEngine``: any human-parsing model exported to ONNX, behind the engine interface.

For one photo:

1. **Fit.** The photo is resized (bilinear, keeping its aspect ratio) to fit the model's
   input size and padded on the right and bottom by repeating its edge pixels; a model
   with a dynamic input gets a canvas rounded up to a multiple of 32 instead of the full
   square.
2. **Run.** One onnxruntime session per engine, created once; onnxruntime's ``run`` is
   safe to call from several threads at once, so the server's workers share it.
3. **Read back.** The logits are cropped to the part that shows the photo (whole
   pixels), and the exact fraction of a pixel it covers is kept, so that upsampling maps
   every photo pixel to the logit position it came from: a region's mask is where the
   region is, with no half-pixel shift.
4. **Upsample the SegFormer way.** The logits are upsampled to the photo's size
   (bilinear, pixel centres aligned) *before* the arg-max gives the label map, in row
   blocks; the soft class masks come from the softmax probabilities, summed per class
   at the model's resolution and upsampled the same way. No full-size float copy of
   all channels is ever made.

Per-garment parts (``tops_0`` ...) are each garment label's connected regions, split
as the local engine splits its garments (:mod:`clothseg_tools.engines._parts`).

The API's effort options:

- ``quality=2``: the mirrored photo is run too and the logits are averaged;
- ``detail_mode=2``: a model with a dynamic input runs at twice its size (up to the
  photo's own size); a fixed-size model runs on 3 x 3 overlapping tiles of the photo
  fitted to twice its size, the tiles' logits averaged where they overlap.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..._io import sha256_file
from ...errors import EngineError, ModelError
from ...labelsets import LabelSet
from ...parsing import Parsing, upsampled_blocks
from .._parts import parsing_parts
from ..base import Engine, EngineOutput
from .model import ModelSpec, SizeLike, find_model_file, load_session, read_spec

__all__ = ["OnnxEngine"]

logger = logging.getLogger("clothseg_tools")

FloatArray = npt.NDArray[np.float32]

# dynamic inputs are rounded up to this multiple: the strides of common backbones
_PAD_MULTIPLE = 32


class OnnxEngine(Engine):
    """Segment with an exported human-parsing model (SegFormer, SCHP, FASHN...).

    Parameters
    ----------
    model
        A ``.onnx`` file, or an exported model folder (``model.onnx``, ``config.json``
        with ``id2label``, ``preprocessor_config.json``).
    labels
        The label set of the output channels (a name, a ``.json`` path, a
        :class:`~clothseg_tools.labelsets.LabelSet`, or names in order). Default: matched
        from ``config.json``'s ``id2label``.
    size
        (height, width) or one number for a model with a dynamic input. Default: the
        processor's ``size``, else 512. A fixed input size is read from the model.
    mean, std
        Per-channel normalisation after rescaling. Default: the processor's, else the
        ImageNet values.
    rescale
        Factor from 0..255 to the model's range. Default: the processor's, else 1/255.
    bgr
        Feed blue, green, red channels (SCHP exports).
    providers
        onnxruntime execution providers, e.g. ``["CUDAExecutionProvider",
        "CPUExecutionProvider"]``. Default: the CPU.

    Raises
    ------
    ModelError
        A missing or unloadable model, labels that cannot be found or do not match the
        model's output channels, or options the model contradicts.

    Examples
    --------
    >>> engine = OnnxEngine("segformer_b2_clothes_onnx/")  # doctest: +SKIP
    >>> out = engine.segment(rgb, classes=CLASSES)  # doctest: +SKIP
    >>> out.parsing.mask("Left-arm")  # doctest: +SKIP
    """

    name = "onnx"
    thread_safe = True  # one onnxruntime session; its run() may be called concurrently

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        labels: Any = None,
        size: SizeLike = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        rescale: float | None = None,
        bgr: bool = False,
        providers: Sequence[Any] | None = None,
    ) -> None:
        path = find_model_file(model)
        self._session = load_session(path, providers)
        self.spec: ModelSpec = read_spec(
            model, self._session, labels=labels, size=size, mean=mean, std=std,
            rescale=rescale, bgr=bgr,
        )  # fmt: skip
        self._channels = self._check_output_channels()
        self._identity: dict[str, Any] | None = None

    def __repr__(self) -> str:
        h, w = self.spec.size
        return (
            f"OnnxEngine({str(self.spec.path)!r}, labels={self.spec.labelset.name!r}, "
            f"size=({h}, {w}))"
        )

    @property
    def labelset(self) -> LabelSet:
        """The label set of the model's output channels."""
        return self.spec.labelset

    def identity(self) -> dict[str, Any]:
        """The model file's SHA-256 and the settings that change what it sees.

        A batch records this with every item, so a rerun with another ``--model``,
        label set or input size redoes the items. The model is hashed once per engine
        (about 1 s per GB) and by content, so the same model at another path on
        another machine of a cluster counts as the same.

        Examples
        --------
        >>> OnnxEngine("model.onnx").identity()["model"]  # doctest: +SKIP
        'sha256:9f2c...'
        """
        if self._identity is None:
            spec = self.spec
            self._identity = {
                "model": f"sha256:{sha256_file(spec.path)}",
                "labels": spec.labelset.to_json(),
                "size": list(spec.size),
                "mean": list(spec.mean),
                "std": list(spec.std),
                "rescale": spec.rescale,
                "bgr": spec.bgr,
            }
        return dict(self._identity)

    # -- checks ------------------------------------------------------------------------

    def _check_output_channels(self) -> int:
        """The output's channel axis (1 or 3), checked against the label set's size.

        Read from the graph when the output shape is static; otherwise from one run on
        a blank input, so a mismatch is found when the model loads, not on a user's photo.
        """
        shape = list(self._session.get_outputs()[0].shape)
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape):
            h, w = self.spec.size
            probe = self._run(np.zeros((1, 3, h, w) if not self.spec.channels_last
                                       else (1, h, w, 3), self.spec.input_dtype))  # fmt: skip
            shape = list(probe.shape)
        n = len(self.spec.labelset)
        if len(shape) == 4 and shape[1] == n:
            return 1
        if len(shape) == 4 and shape[3] == n:
            return 3
        raise ModelError(
            f"{self.spec.path}: the output {self.spec.output_name!r} has shape {shape}, but "
            f"label set {self.spec.labelset.name!r} has {n} labels; the model must give "
            f"(1, {n}, h, w) logits. Pass the label set it was trained on (labels=, "
            "--labels) whose size is its channel count."
        )

    # -- one run ---------------------------------------------------------------------------

    def _run(self, tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        try:
            out = self._session.run([self.spec.output_name], {self.spec.input_name: tensor})[0]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(
                f"{self.spec.path} failed on an input of shape {tensor.shape}: "
                f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            ) from exc
        return np.asarray(out)

    def _logits(self, tensor: npt.NDArray[Any], *, mirrored: bool) -> FloatArray:
        """(C, h, w) float32 logits for one canvas; averaged with its mirror image."""
        w_axis = 2 if self.spec.channels_last else 3
        logits = self._as_chw(self._run(tensor))
        if mirrored:
            flipped = np.ascontiguousarray(np.flip(tensor, axis=w_axis))
            logits += self._as_chw(self._run(flipped))[:, :, ::-1]
            logits *= 0.5
        return logits

    def _as_chw(self, out: npt.NDArray[Any]) -> FloatArray:
        if out.ndim != 4 or out.shape[0] != 1:
            raise EngineError(f"{self.spec.path} returned shape {out.shape}, not (1, C, h, w).")
        chw = out[0] if self._channels == 1 else np.moveaxis(out[0], -1, 0)
        return np.array(chw, dtype=np.float32)

    # -- fitting the photo -----------------------------------------------------------------

    def _canvas(self, image: npt.NDArray[np.uint8], fit: tuple[int, int], canvas: tuple[int, int]
                ) -> tuple[npt.NDArray[Any], tuple[int, int]]:  # fmt: skip
        """The normalised input tensor of ``image`` fitted into ``fit``, padded to ``canvas``."""
        from PIL import Image  # Pillow resizes like the models' own image processors

        h, w = image.shape[:2]
        scale = min(fit[0] / h, fit[1] / w)
        rh, rw = max(1, min(fit[0], round(h * scale))), max(1, min(fit[1], round(w * scale)))
        pixels = image
        if (rh, rw) != (h, w):
            pixels = np.asarray(Image.fromarray(image).resize((rw, rh), Image.Resampling.BILINEAR))
        spec = self.spec
        if spec.bgr:
            pixels = pixels[..., ::-1]
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        x = np.empty((*canvas, 3), np.float32)
        region = x[:rh, :rw]
        np.multiply(pixels, np.float32(spec.rescale), out=region, casting="unsafe")
        region -= mean
        region /= std
        # the padding repeats the edge pixels: the logit cell the photo's edge shares with
        # the padding then still shows the photo, so no background bleeds into the edge
        x[rh:, :rw] = region[-1:]
        x[:, rw:] = x[:, rw - 1 : rw]
        tensor = x[None] if spec.channels_last else np.moveaxis(x, -1, 0)[None]
        return np.ascontiguousarray(tensor, dtype=spec.input_dtype), (rh, rw)

    def _dynamic_canvas(self, fit: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = image_hw
        scale = min(fit[0] / h, fit[1] / w)
        rh, rw = round(h * scale), round(w * scale)
        return (
            max(_PAD_MULTIPLE, math.ceil(rh / _PAD_MULTIPLE) * _PAD_MULTIPLE),
            max(_PAD_MULTIPLE, math.ceil(rw / _PAD_MULTIPLE) * _PAD_MULTIPLE),
        )

    def _single(
        self, image: npt.NDArray[np.uint8], fit: tuple[int, int], *, mirrored: bool
    ) -> tuple[FloatArray, tuple[float, float]]:
        """Logits of one run and the (rows, cols) of them the photo covers."""
        hw = (image.shape[0], image.shape[1])
        canvas = fit if self.spec.fixed else self._dynamic_canvas(fit, hw)
        tensor, (rh, rw) = self._canvas(image, fit, canvas)
        logits = self._logits(tensor, mirrored=mirrored)
        _, lh, lw = logits.shape
        return logits, (rh * lh / canvas[0], rw * lw / canvas[1])

    def _tiled(
        self, image: npt.NDArray[np.uint8], *, mirrored: bool
    ) -> tuple[FloatArray, tuple[float, float]] | None:
        """Logits of 3 x 3 overlapping model-size tiles of the photo fitted to twice the
        model's size, or ``None`` when the model's output stride is not a whole number
        of pixels (tiles could not be placed on its logit grid exactly)."""
        th, tw = self.spec.size
        big = (2 * th, 2 * tw)
        tensor, (rh, rw) = self._canvas(image, big, big)
        first = None
        acc: FloatArray | None = None
        count: npt.NDArray[np.float32] | None = None
        stride_h = stride_w = 1
        for oy in (0, th // 2, th):
            for ox in (0, tw // 2, tw):
                if oy >= rh or ox >= rw:
                    continue  # the tile shows only padding
                tile = (tensor[:, oy : oy + th, ox : ox + tw] if self.spec.channels_last
                        else tensor[:, :, oy : oy + th, ox : ox + tw])  # fmt: skip
                logits = self._logits(np.ascontiguousarray(tile), mirrored=mirrored)
                c, lh, lw = logits.shape
                if first is None:
                    if th % lh or tw % lw:
                        return None
                    stride_h, stride_w = th // lh, tw // lw
                    acc = np.zeros((c, 2 * lh, 2 * lw), np.float32)
                    count = np.zeros((1, 2 * lh, 2 * lw), np.float32)
                    first = logits
                assert acc is not None and count is not None
                y, x = oy // stride_h, ox // stride_w
                acc[:, y : y + lh, x : x + lw] += logits
                count[:, y : y + lh, x : x + lw] += 1
        assert acc is not None and count is not None
        acc /= np.maximum(count, 1)
        return acc, (rh / stride_h, rw / stride_w)

    # -- the engine interface ----------------------------------------------------------------

    def parse(
        self, image: npt.NDArray[np.uint8], *, detail_mode: int = 1, quality: int = 1
    ) -> tuple[Parsing, tuple[str, ...]]:
        """The fine :class:`~clothseg_tools.Parsing` of one (H, W, 3) uint8 RGB photo.

        Returns the parsing (labels from logits upsampled before the arg-max, and the
        softmax probabilities at the model's resolution) and notes for the user.
        """
        notes: list[str] = []
        mirrored = quality >= 2
        result = None
        if detail_mode >= 2:
            if self.spec.fixed:
                result = self._tiled(image, mirrored=mirrored)
                if result is None:
                    notes.append(
                        "detail_mode=2: the model's output stride is not a whole number of "
                        "pixels, so it ran once at its own size"
                    )
            else:
                h, w = image.shape[:2]
                grow = min(2.0, max(1.0, max(h, w) / max(self.spec.size)))
                fit = (round(self.spec.size[0] * grow), round(self.spec.size[1] * grow))
                result = self._single(image, fit, mirrored=mirrored)
        if result is None:
            result = self._single(image, self.spec.size, mirrored=mirrored)
        logits, extent = result
        return self._post(logits, extent, (image.shape[0], image.shape[1])), tuple(notes)

    def _post(
        self, logits: FloatArray, extent: tuple[float, float], shape: tuple[int, int]
    ) -> Parsing:
        """Crop to the photo, arg-max of the upsampled logits, softmax probabilities."""
        _, lh, lw = logits.shape
        rows = min(lh, math.ceil(extent[0] - 1e-6))
        cols = min(lw, math.ceil(extent[1] - 1e-6))
        logits = np.ascontiguousarray(logits[:, :rows, :cols])
        extent = (min(extent[0], rows), min(extent[1], cols))
        n = len(self.spec.labelset)
        labels = np.empty(shape, np.uint8 if n <= 256 else np.uint16)
        for r0, r1, block in upsampled_blocks(logits, shape, extent=extent):
            labels[r0:r1] = block.argmax(axis=0)
        probs = logits - logits.max(axis=0, keepdims=True)  # softmax, at the model's size
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=0, keepdims=True)
        return Parsing(labels, self.spec.labelset, probs=probs, probs_extent=extent)

    def _segment(
        self,
        image: npt.NDArray[np.uint8],
        *,
        classes: tuple[str, ...],
        detail_mode: int,
        quality: int,
        image_bytes: bytes | None,
    ) -> EngineOutput:
        parsing, notes = self.parse(image, detail_mode=detail_mode, quality=quality)
        table = self.spec.labelset.class_table()
        assert parsing.probs is not None
        if not table[parsing.probs.argmax(axis=0)].any():
            notes = (*notes, "no person found")
        masks = parsing.to_maskset(classes)
        return EngineOutput(masks, parsing_parts(parsing, masks), notes, parsing=parsing)

    def close(self) -> None:
        """Drop the onnxruntime session (the engine cannot be used afterwards)."""
        self._session = None
