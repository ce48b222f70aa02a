"""clothseg_tools: client, vectorized mask toolkit, local server and batch CLI for a
clothing segmentation service.

Public names are re-exported here and imported lazily on first use, so that
``import clothseg_tools`` (and the CLI's start-up) stays fast and optional parts
load only when touched.

Examples
--------
>>> import clothseg_tools as cst
>>> cst.CLASSES[:3]
('hair', 'face', 'head')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # vocabulary
    "CLASSES": "classes",
    "CLASS_TYPES": "classes",
    "LABEL_PRIORITY": "classes",
    "PALETTE": "classes",
    # the service contract
    "Options": "contract",
    # label sets
    "LabelSet": "labelsets",
    "LABELSETS": "labelsets",
    "get_labelset": "labelsets",
    "register_labelset": "labelsets",
    "match_labelset": "labelsets",
    "load_labelset": "labelsets",
    # central types
    "MaskSet": "masks",
    "Parsing": "parsing",
    # decoding
    "decode_mask": "decode",
    "decode_masks": "masks",
    "read_mask_zip": "zipmasks",
    "group_parts": "zipmasks",
    # vectorized core
    "merge": "ops",
    "threshold": "ops",
    "label_map": "ops",
    "masks_from_labels": "ops",
    "clean": "ops",
    "feather": "ops",
    "resize_mask": "ops",
    "cutout": "composite",
    "replace_background": "composite",
    "overlay": "composite",
    "estimate_foreground": "composite",
    "coverage": "stats",
    "Coverage": "stats",
    "coverage_table": "stats",
    "summarize": "stats",
    "iou": "stats",
    "dice": "stats",
    # try-on and exports
    "tryon_mask": "tryon",
    "garment_mask": "tryon",
    "agnostic_image": "tryon",
    "encode_rle": "export",
    "decode_rle": "export",
    "rle_area": "export",
    "rle_bbox": "export",
    "mask_to_polygons": "export",
    "export_coco": "export",
    "save_label_png": "export",
    "load_label_png": "export",
    # one photo, from the service or an engine
    "segment": "segmentation",
    "export_yolo": "export",
    "export_cvat": "export",
    "export_labelstudio": "export",
    "export_hf": "export",
    "read_coco": "export",
    "read_cvat": "export",
    "read_yolo": "export",
    # fetch layer
    "Client": "api",
    "Task": "api",
    "SegmentationResult": "api",
    # engines
    "get_engine": "engines",
    # errors
    "ClothsegError": "errors",
    "ConfigurationError": "errors",
    "InputError": "errors",
    "LabelSetError": "errors",
    "LabelSetMatchError": "errors",
    "MaskDecodeError": "errors",
    "MaskZipError": "errors",
    "UnsafeZipError": "errors",
    "ResultExpiredError": "errors",
    "APIError": "errors",
    "APIStatusError": "errors",
    "TaskFailedError": "errors",
    "WaitTimeoutError": "errors",
}

__all__ = [
    "__version__",
    "CLASSES",
    "CLASS_TYPES",
    "LABEL_PRIORITY",
    "PALETTE",
    "Options",
    "LabelSet",
    "LABELSETS",
    "get_labelset",
    "register_labelset",
    "match_labelset",
    "load_labelset",
    "MaskSet",
    "Parsing",
    "decode_mask",
    "decode_masks",
    "read_mask_zip",
    "group_parts",
    "merge",
    "threshold",
    "label_map",
    "masks_from_labels",
    "clean",
    "feather",
    "resize_mask",
    "cutout",
    "replace_background",
    "overlay",
    "estimate_foreground",
    "coverage",
    "Coverage",
    "coverage_table",
    "summarize",
    "iou",
    "dice",
    "tryon_mask",
    "garment_mask",
    "agnostic_image",
    "encode_rle",
    "decode_rle",
    "rle_area",
    "rle_bbox",
    "mask_to_polygons",
    "export_coco",
    "save_label_png",
    "load_label_png",
    "segment",
    "export_yolo",
    "export_cvat",
    "export_labelstudio",
    "export_hf",
    "read_coco",
    "read_cvat",
    "read_yolo",
    "Client",
    "Task",
    "SegmentationResult",
    "get_engine",
    "ClothsegError",
    "ConfigurationError",
    "InputError",
    "LabelSetError",
    "LabelSetMatchError",
    "MaskDecodeError",
    "MaskZipError",
    "UnsafeZipError",
    "ResultExpiredError",
    "APIError",
    "APIStatusError",
    "TaskFailedError",
    "WaitTimeoutError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clothseg_tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - static analysers see plain imports
    from .api import Client, SegmentationResult, Task
    from .classes import CLASS_TYPES, CLASSES, PALETTE
    from .composite import cutout, estimate_foreground, overlay, replace_background
    from .contract import Options
    from .decode import decode_mask
    from .engines import get_engine
    from .errors import (
        APIError,
        APIStatusError,
        ClothsegError,
        ConfigurationError,
        InputError,
        LabelSetError,
        LabelSetMatchError,
        MaskDecodeError,
        MaskZipError,
        ResultExpiredError,
        TaskFailedError,
        UnsafeZipError,
        WaitTimeoutError,
    )
    from .export import (
        decode_rle,
        encode_rle,
        export_coco,
        export_cvat,
        export_hf,
        export_labelstudio,
        export_yolo,
        load_label_png,
        mask_to_polygons,
        read_coco,
        read_cvat,
        read_yolo,
        rle_area,
        rle_bbox,
        save_label_png,
    )
    from .labelsets import (
        LABELSETS,
        LabelSet,
        get_labelset,
        load_labelset,
        match_labelset,
        register_labelset,
    )
    from .masks import MaskSet, decode_masks
    from .ops import clean, feather, label_map, masks_from_labels, merge, resize_mask, threshold
    from .parsing import Parsing
    from .stats import Coverage, coverage, coverage_table, dice, iou, summarize
    from .tryon import agnostic_image, garment_mask, tryon_mask
    from .zipmasks import group_parts, read_mask_zip
