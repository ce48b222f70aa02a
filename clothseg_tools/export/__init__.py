"""Dataset exports and imports: COCO, YOLO, CVAT, Label Studio, Hugging Face datasets.

``clothseg_tools.export`` turns masks into the formats training code and labelling
tools read, and reads corrected labels back:

- :func:`encode_rle` / :func:`decode_rle` / :func:`rle_area` / :func:`rle_bbox`: COCO
  run-length encoding, byte for byte what pycocotools writes, in vectorized numpy;
- :func:`mask_to_polygons`: COCO polygons, every part of a mask, holes kept;
- :func:`export_coco`: one COCO JSON for many results (instances or semantic);
- :func:`save_label_png` / :func:`load_label_png`: palette PNG label maps;
- :func:`export_yolo`, :func:`export_cvat`, :func:`export_labelstudio`,
  :func:`export_hf`: dataset folders for Ultralytics YOLO segmentation, CVAT's
  "Segmentation mask 1.1", Label Studio pre-annotations (:func:`brush_rle`) and
  Hugging Face ``datasets`` parquet shards;
- :func:`read_coco`, :func:`read_cvat`, :func:`read_yolo`: labels back from those
  tools as :class:`LabeledItem` (name, masks, photo, parts), ready to save as result
  folders.

A dataset folder that CVAT and Label Studio import
--------------------------------------------------
::

    dataset/
      images/<stem>.jpg                      the photos, as segmented
      annotations/instances_default.json     export_coco(results, ..., mode="instances")
      annotations/semantic.json              export_coco(results, ..., mode="semantic")
      SegmentationClass/<stem>.png           save_label_png(label map) per photo
      ImageSets/Segmentation/default.txt     one <stem> per line
      labelmap.txt                           cvat_labelmap()

- CVAT: upload the folder zipped as "COCO 1.0" (``images/`` + ``annotations/
  instances_default.json``) to get editable masks, or as "Segmentation mask 1.1"
  (``labelmap.txt``, ``ImageSets/`` and ``SegmentationClass/``, Pascal VOC style)
  for one class map per photo; the label PNGs' palette matches ``labelmap.txt``.
- Label Studio: convert the COCO file with ``label-studio-converter import coco``;
  export with ``encoding="polygon"`` there, since its COCO import reads polygons.
- Training code (detectron2, mmdetection, pycocotools) reads the RLE COCO file as
  it is; semantic-segmentation code reads ``SegmentationClass/`` (value ``i`` is
  ``CLASSES[i - 1]``, 0 is background) or the ``semantic`` COCO file.

``file_name`` in the COCO file is the photo's file name as recorded in each result
(``result.json``'s ``source``): keep the photos under ``images/`` with those names.

Examples
--------
>>> import numpy as np
>>> from clothseg_tools.export import encode_rle, decode_rle
>>> m = np.zeros((3, 3), bool); m[1, 1] = True
>>> encode_rle(m)["counts"], bool((decode_rle(encode_rle(m)) == m).all())
('414', True)
"""

from __future__ import annotations

from ._dataset import ExportSummary
from ._labeled import LabeledItem
from .coco import SEMANTIC_PRIORITY, export_coco, part_category
from .coco_reader import read_coco
from .cvat import export_cvat, read_cvat
from .hf import export_hf
from .labels import (
    cvat_labelmap,
    encode_label_png,
    label_palette,
    load_label_png,
    save_label_png,
)
from .labelstudio import brush_rle, export_labelstudio, labelstudio_config
from .polygons import mask_to_polygons
from .rle import RLE, binary_mask, decode_rle, encode_rle, rle_area, rle_bbox, rle_counts
from .yolo import export_yolo, read_yolo

__all__ = [
    "RLE",
    "SEMANTIC_PRIORITY",
    "ExportSummary",
    "LabeledItem",
    "binary_mask",
    "brush_rle",
    "cvat_labelmap",
    "decode_rle",
    "encode_label_png",
    "encode_rle",
    "export_coco",
    "export_cvat",
    "export_hf",
    "export_labelstudio",
    "export_yolo",
    "label_palette",
    "labelstudio_config",
    "load_label_png",
    "mask_to_polygons",
    "part_category",
    "read_coco",
    "read_cvat",
    "read_yolo",
    "rle_area",
    "rle_bbox",
    "rle_counts",
    "save_label_png",
]
