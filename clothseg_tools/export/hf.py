"""Hugging Face datasets: parquet shards with the photo, the label map and, as wanted,
one mask column per class.

::

    out/
      README.md                               the dataset card (features, classes)
      data/train-00000-of-00002.parquet       rows: image, label, classes, name, ...
      data/train-00001-of-00002.parquet

Columns, declared as ``datasets`` features in each shard's schema metadata (the
``huggingface`` key ``datasets`` itself writes), so
``datasets.load_dataset("parquet", data_dir=out)`` and ``load_dataset(out)`` give
them typed:

- ``image`` (``Image``): the photo's bytes as segmented;
- ``label`` (``Image``): the label map as a palette PNG, value ``i`` is
  ``names[i]`` (0 background, then :data:`~clothseg_tools.CLASSES`; overlaps settled
  by :data:`~clothseg_tools.classes.LABEL_PRIORITY`);
- ``classes`` (``Sequence(ClassLabel)``): the label values present, with the names;
- ``name`` (``Value("string")``): the image's relative name;
- one ``Image`` column per class asked for (``masks=("tops", ...)``): that class's
  own mask, 0/255, overlaps kept.

Writing needs ``pyarrow`` (the ``[hf]`` extra); reading back needs ``datasets``.

Examples
--------
>>> import numpy as np, tempfile, pathlib
>>> from clothseg_tools import MaskSet
>>> tops = np.zeros((4, 6), bool); tops[1:3, 1:3] = True
>>> out = pathlib.Path(tempfile.mkdtemp()) / "hf"
>>> export_hf([("a.jpg", MaskSet({"tops": tops}))], out, images=False).images
1
>>> sorted(p.name for p in (out / "data").iterdir())
['train-00000-of-00001.parquet']
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, encode_png
from ..classes import CLASSES, LABEL_PRIORITY, canonical_class
from ..errors import OptionalDependencyError, install_hint
from ._dataset import ExportSummary, checked_photo, staged_folder
from ._source import ExportItem, iter_items, semantic_labels
from .labels import encode_label_png

__all__ = ["LABEL_NAMES", "export_hf", "hf_features"]

logger = logging.getLogger("clothseg_tools")

#: Names of the ``label`` values: 0 is background, then the classes.
LABEL_NAMES: tuple[str, ...] = ("background", *CLASSES)

# Flush a row group at this many rows or bytes: memory stays bounded whatever the
# images weigh, and readers can stream a shard group by group.
_GROUP_ROWS = 64
_GROUP_BYTES = 64 << 20


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise OptionalDependencyError(
            "Writing a Hugging Face dataset needs pyarrow, which is not installed. "
            f"Install it with: {install_hint('hf')}"
        ) from exc
    return pyarrow


def hf_features(masks: Sequence[str] = ()) -> dict[str, Any]:
    """The ``datasets`` features of the export, as ``Features.to_dict()`` spells them.

    Examples
    --------
    >>> sorted(hf_features(["tops"]))
    ['classes', 'image', 'label', 'name', 'tops']
    >>> hf_features()["classes"]["feature"]["names"][:3]
    ['background', 'hair', 'face']
    """
    features: dict[str, Any] = {
        "image": {"_type": "Image"},
        "label": {"_type": "Image"},
        # "Sequence" is read by every datasets release (newer ones call it List)
        "classes": {
            "feature": {"names": list(LABEL_NAMES), "_type": "ClassLabel"},
            "_type": "Sequence",
        },
        "name": {"dtype": "string", "_type": "Value"},
    }
    for cls in masks:
        features[cls] = {"_type": "Image"}
    return features


def _schema(pa: Any, masks: Sequence[str]) -> Any:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [
        ("image", image),
        ("label", image),
        ("classes", pa.list_(pa.int64())),
        ("name", pa.string()),
        *((cls, image) for cls in masks),
    ]
    meta = {"huggingface": json.dumps({"info": {"features": hf_features(masks)}})}
    return pa.schema(fields, metadata=meta)


def _row(
    item: ExportItem,
    *,
    masks: Sequence[str],
    level: int,
    priority: Sequence[str],
    images: bool,
) -> dict[str, Any]:
    labels = semantic_labels(item, level, priority)
    photo = None
    if images:
        photo_path = checked_photo(item)
        photo = {"bytes": photo_path.read_bytes(), "path": item.file_name}
    present = np.flatnonzero(np.bincount(labels.reshape(-1), minlength=len(LABEL_NAMES)))
    row: dict[str, Any] = {
        "image": photo,
        "label": {"bytes": encode_label_png(labels), "path": f"{item.name}.png"},
        "classes": [int(v) for v in present if v],
        "name": item.name,
    }
    own = {canonical_class(n): n for n in item.masks.classes}
    for cls in masks:
        mask = item.masks[own[cls]] >= level if cls in own else np.zeros(labels.shape, bool)
        row[cls] = {
            "bytes": encode_png(np.where(mask, np.uint8(255), np.uint8(0))),
            "path": f"{cls}.png",
        }
    return row


def _row_bytes(row: dict[str, Any]) -> int:
    return sum(len(v["bytes"]) for v in row.values() if isinstance(v, dict) and v.get("bytes"))


class _ShardWriter:
    """Rows into ``data/<split>-NNNNN.parquet.tmp`` files of at most ``max_bytes``."""

    def __init__(self, pa: Any, folder: Path, split: str, schema: Any, max_bytes: int) -> None:
        self.pa, self.folder, self.split = pa, folder, split
        self.schema, self.max_bytes = schema, max_bytes
        self.paths: list[Path] = []
        self.rows: list[dict[str, Any]] = []
        self.pending = self.written = 0
        self.writer: Any = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.pending += _row_bytes(row)
        full = self.written + self.pending >= self.max_bytes
        if full or len(self.rows) >= _GROUP_ROWS or self.pending >= _GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            path = self.folder / f"{self.split}-{len(self.paths):05d}.parquet.tmp"
            self.paths.append(path)
            self.writer = self.pa.parquet.ParquetWriter(path, self.schema)
        table = self.pa.Table.from_pylist(self.rows, schema=self.schema)
        self.writer.write_table(table)
        self.written += self.pending
        self.rows, self.pending = [], 0
        if self.written >= self.max_bytes:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.written = None, 0

    def finish(self) -> list[Path]:
        """Close the last shard and give every shard its ``-of-N`` name."""
        self.flush()
        self.close()
        if not self.paths:  # no rows: one empty shard keeps the schema
            path = self.folder / f"{self.split}-00000.parquet.tmp"
            self.pa.parquet.write_table(self.schema.empty_table(), path)
            self.paths.append(path)
        n = len(self.paths)
        final = []
        for i, path in enumerate(self.paths):
            target = self.folder / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
            os.replace(path, target)
            final.append(target)
        return final


def export_hf(
    results: Any,
    out: str | os.PathLike[str],
    *,
    masks: Sequence[str] = (),
    level: int = 128,
    priority: Sequence[str] = LABEL_PRIORITY,
    images: bool = True,
    split: str = "train",
    max_shard_bytes: int = 500 << 20,
    overwrite: bool = False,
) -> ExportSummary:
    """Write a Hugging Face dataset folder: parquet shards and a dataset card.

    Parameters
    ----------
    results
        Result folders, a folder holding them, ``(file_name, MaskSet[, parts])``
        tuples or ``SegmentationResult`` objects.
    out
        The dataset folder, built aside and moved into place when complete.
    masks
        Classes that also get a column of their own (their mask, overlaps kept).
    level, priority
        Mask threshold; the class order that settles overlaps in ``label``.
    images
        Put the photos in the ``image`` column (default; else it is empty).
    split
        The split the shards are named after.
    max_shard_bytes
        A new shard starts once a shard holds this many bytes of images.
    overwrite
        Replace ``out`` if it exists and is not empty.

    Returns
    -------
    ExportSummary
        ``annotations`` is 0 (one label map per image).

    Raises
    ------
    OptionalDependencyError
        pyarrow is not installed.
    ValueError
        A class in ``masks`` that we do not know, or a bad ``split``.
    FileNotFoundError
        A photo not on disk (with ``images``).
    """
    pa = _pyarrow()
    columns = [canonical_class(c) for c in masks]
    unknown = [c for c in columns if c not in CLASSES]
    if unknown:
        raise ValueError(f"Unknown class(es) {unknown} in masks; choose from {', '.join(CLASSES)}.")
    if not split.isidentifier():
        raise ValueError(f"split must be a plain name such as 'train', got {split!r}.")
    target = Path(out)
    n = 0
    with staged_folder(target, overwrite=overwrite) as stage:
        (stage / "data").mkdir()
        shards = _ShardWriter(pa, stage / "data", split, _schema(pa, columns), max_shard_bytes)
        for item in iter_items(results):
            item.check()
            shards.add(_row(item, masks=columns, level=level, priority=priority, images=images))
            n += 1
        paths = shards.finish()
        card = dataset_card(n, split=split, masks=columns, shards=len(paths))
        atomic_write_bytes(stage / "README.md", card.encode("utf-8"))
    logger.info("export_hf: wrote %d rows in %d shards to %s", n, len(paths), target)
    return ExportSummary(target, n, 0)


def dataset_card(
    rows: int, *, split: str = "train", masks: Sequence[str] = (), shards: int = 1
) -> str:
    """The README.md of the dataset folder: YAML metadata, then how to read it.

    Examples
    --------
    >>> print(dataset_card(3).splitlines()[0:4])
    ['---', 'configs:', '- config_name: default', '  data_files:']
    """
    names = "\n".join(f"          '{i}': {name}" for i, name in enumerate(LABEL_NAMES))
    extra = "".join(f"  - name: {c}\n    dtype: image\n" for c in masks)
    table = "\n".join(f"| {i} | {name} |" for i, name in enumerate(LABEL_NAMES))
    mask_text = (
        f"- `{'`, `'.join(masks)}` (`Image`): each of these classes' own mask, 0 or 255, "
        "overlaps kept.\n"
        if masks
        else ""
    )
    return f"""---
configs:
- config_name: default
  data_files:
  - split: {split}
    path: data/{split}-*
dataset_info:
  features:
  - name: image
    dtype: image
  - name: label
    dtype: image
  - name: classes
    sequence:
      class_label:
        names:
{names}
  - name: name
    dtype: string
{extra}  splits:
  - name: {split}
    num_examples: {rows}
task_categories:
- image-segmentation
tags:
- clothing
- human-parsing
---

# Clothing segmentation masks

{rows} images in {shards} parquet shard(s), written by `clothseg_tools`.

```python
from datasets import load_dataset

ds = load_dataset("parquet", data_dir="path/to/this/folder")["{split}"]
row = ds[0]
row["image"], row["label"]  # PIL images: the photo and its label map
```

## Columns

- `image` (`Image`): the photo, as segmented.
- `label` (`Image`): the label map, a palette PNG; pixel value `i` is the class below
  (`numpy.array(row["label"])` gives the values). Where classes overlap the more
  specific one wins (face before head, tops before clothes).
- `classes` (`Sequence(ClassLabel)`): the label values present in the image.
- `name` (`string`): the image's relative name.
{mask_text}
## Label values

| value | class |
|---|---|
{table}
"""
