"""Batch work over folders of images and result folders (the library side of the CLI).

- :mod:`~clothseg_tools.batch.discover`: inputs (files, folders, globs, lists, URLs)
  and result folders, with their output keys.
- :mod:`~clothseg_tools.batch.manifest`: the append-only ``manifest.jsonl`` and its
  shard parts, read as one.
- :mod:`~clothseg_tools.batch.runner`: resume plan, executors (threads here, or Ray
  in :mod:`~clothseg_tools.batch.ray_executor`), summary.
- :mod:`~clothseg_tools.batch.shards`: ``--shard K/N``, its markers and states.
- :mod:`~clothseg_tools.batch.segment`: the segmentation job (remote service or an
  in-process engine).
- :mod:`~clothseg_tools.batch.post`: post-processing jobs over result folders.
- :mod:`~clothseg_tools.batch.tryon`: the try-on mask job over result folders.
- :mod:`~clothseg_tools.batch.coverage`: the coverage statistics job and dataset files.
- :mod:`~clothseg_tools.batch.coco`: the COCO export as a batch, in shards or on Ray.

Examples
--------
>>> from clothseg_tools.batch import BatchItem, Job, run_job
>>> BatchItem("/photos/a.jpg", "a").key
'a'
"""

from __future__ import annotations

from .discover import (
    BatchItem,
    Discovery,
    InputNotFoundError,
    SkippedInput,
    assign_keys,
    discover_inputs,
    discover_results,
    is_url,
    no_results_message,
    require_results,
    scan_inputs,
)
from .manifest import MANIFEST_NAME, Manifest, manifest_path, read_manifest, read_manifests
from .runner import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    BatchOptions,
    BatchSummary,
    Executor,
    ExecutorRun,
    ItemOutput,
    Job,
    LocalExecutor,
    Plan,
    Progress,
    RateLimiter,
    file_checksums,
    plan_job,
    run_item,
    run_job,
    sha256_file,
)
from .shards import Shard, ShardState, shard_states

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MANIFEST_NAME",
    "BatchItem",
    "BatchOptions",
    "BatchSummary",
    "Executor",
    "ExecutorRun",
    "Discovery",
    "InputNotFoundError",
    "ItemOutput",
    "Job",
    "LocalExecutor",
    "Manifest",
    "Plan",
    "Progress",
    "RateLimiter",
    "Shard",
    "ShardState",
    "SkippedInput",
    "assign_keys",
    "discover_inputs",
    "discover_results",
    "file_checksums",
    "is_url",
    "manifest_path",
    "no_results_message",
    "plan_job",
    "read_manifest",
    "read_manifests",
    "run_item",
    "require_results",
    "run_job",
    "scan_inputs",
    "sha256_file",
    "shard_states",
]
