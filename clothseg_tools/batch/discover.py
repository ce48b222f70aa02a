"""Finding the work of a batch: input images, result folders, and where outputs go.

A batch item pairs a *source* (an absolute path or a URL) with a *key*: the output
folder's path relative to the batch's output root. Keys follow one rule, the input's
path relative to what was named on the command line, without its extension
(``photos/a/x.jpg`` given as ``photos`` -> ``a/x``), made unique so that same-named
files never share an output folder. A key once recorded in a manifest is reused on the
next run, so resuming never moves outputs.

Examples
--------
>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("a/x.jpg", "b/x.jpg", "b/y.png", "notes.md"):
...     p = root / name; p.parent.mkdir(parents=True, exist_ok=True); _ = p.write_bytes(b"")
>>> [item.key for item in discover_inputs([root])]
['a/x', 'b/x', 'b/y']
"""

from __future__ import annotations

import glob
import hashlib
import os
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .. import limits
from .._io import non_regular_kind
from ..contract import is_url, safe_source
from ..errors import ConfigurationError
from ..result import PARTS_DIR, RESULT_NAME, find_results
from .manifest import manifest_path, read_manifest

__all__ = [
    "BatchItem",
    "Discovery",
    "InputNotFoundError",
    "SkippedInput",
    "assign_keys",
    "discover_inputs",
    "discover_results",
    "is_url",
    "no_results_message",
    "require_results",
    "safe_source",
    "scan_inputs",
]

_GLOB_MAGIC = frozenset("*?[")


class InputNotFoundError(ConfigurationError):
    """An input named on the command line does not exist or matches nothing."""


@dataclass(frozen=True)
class BatchItem:
    """One unit of batch work.

    Attributes
    ----------
    source : str
        Absolute path of the input (an image, or a result folder for post-processing),
        or an ``http(s)://`` URL without its secrets (see :func:`safe_source`). This
        is what the manifest records and what identifies the item across runs.
    key : str
        The output folder relative to the batch's output root, ``/``-separated.
    url : str or None
        The full URL to fetch, query string included; never written anywhere.
    origin : str or None
        Where the item was named when that was a list file (``"photos.txt line 3"``),
        so that a missing entry's failure says where to fix it.
    """

    source: str
    key: str
    url: str | None = field(default=None, repr=False, compare=False)
    origin: str | None = field(default=None, repr=False, compare=False)

    @property
    def is_url(self) -> bool:
        """Whether the item is fetched from a URL rather than read from a path."""
        return self.url is not None or is_url(self.source)

    @property
    def location(self) -> str:
        """What to read: the full URL, or the path."""
        return self.url or self.source


@dataclass(frozen=True)
class SkippedInput:
    """A file that discovery passed over, and why (listed in the summary and manifest).

    Attributes
    ----------
    source : str
        Absolute path of the file.
    reason : str
        Why it is not an item (``"unsupported file type '.gif'"``).
    """

    source: str
    reason: str


@dataclass
class Discovery:
    """What :func:`scan_inputs` found: the batch items and the files it passed over.

    Attributes
    ----------
    items : list of BatchItem
        Sorted by key; each source once.
    skipped : list of SkippedInput
        Files inside named folders or matched by globs that are not supported images,
        sorted by path. Hidden files (``.DS_Store``) are not listed.
    """

    items: list[BatchItem] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


def _has_magic(text: str) -> bool:
    return any(ch in _GLOB_MAGIC for ch in text)


def _is_image_name(name: str, extensions: frozenset[str]) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions


def _unsupported(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return f"unsupported file type {ext!r}" if ext else "no file extension"


def _walk(
    folder: Path, extensions: frozenset[str], exclude: Sequence[Path]
) -> tuple[list[Path], list[SkippedInput]]:
    """Image files under ``folder`` and the other files passed over, both sorted.

    Hidden entries and ``exclude`` are neither.
    """
    found: list[Path] = []
    skipped: list[SkippedInput] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        # prune in place: hidden folders and the batch's own output folder are never inputs
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in exclude
        )
        for name in filenames:
            if name.startswith("."):
                continue
            odd = _not_regular(here / name)
            if odd is not None:
                skipped.append(SkippedInput(str(here / name), odd))
            elif _is_image_name(name, extensions):
                found.append(here / name)
            else:
                skipped.append(SkippedInput(str(here / name), _unsupported(name)))
    return sorted(found), sorted(skipped, key=lambda s: s.source)


def _not_regular(path: Path) -> str | None:
    """Why ``path`` is passed over when it is not a regular file (or a link to one).

    A FIFO named like a photo would block its reader forever and a device may never
    end, so discovery lists them as skipped, saying what they are, instead of making
    them items.
    """
    kind = non_regular_kind(path)
    return None if kind is None else f"{kind}, not a regular file"


def _relative_key(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` (or just its name), ``/``-separated, no extension."""
    rel: PurePosixPath
    if base is not None:
        try:
            rel = PurePosixPath(path.relative_to(base).as_posix())
        except ValueError:
            rel = PurePosixPath(path.name)
    else:
        rel = PurePosixPath(path.name)
    return _clean_key(str(rel.with_suffix("")) if rel.suffix else str(rel))


def _url_key(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return _clean_key(os.path.splitext(name)[0] or "image")


def _clean_key(key: str) -> str:
    """Make ``key`` a safe relative folder path: no empty, ``.`` or ``..`` parts."""
    parts = []
    for part in key.replace("\\", "/").split("/"):
        part = part.strip()
        if part in ("", ".", ".."):
            continue
        # characters that Windows refuses in file names, and control characters
        part = "".join("_" if (ch in '<>:"|?*' or ord(ch) < 32) else ch for ch in part)
        parts.append(part.rstrip(". ") or "_")
    return "/".join(parts) or "image"


def _read_list(list_file: Path) -> list[tuple[str, Path | None, int]]:
    """Entries of a ``.txt`` list: one path (relative to the list's folder) or URL a line.

    Each entry is ``(source, base folder or None for a URL, line number)``.
    """
    entries: list[tuple[str, Path | None, int]] = []
    base = list_file.parent
    lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            entries.append((line, None, number))
            continue
        path = Path(os.path.expanduser(line))
        path = path if path.is_absolute() else base / path
        # keep missing files: they become failed lines naming the list and the line
        entries.append((str(path.resolve()), base.resolve(), number))
    return entries


def discover_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    extensions: Iterable[str] = limits.INPUT_EXTENSIONS,
    exclude: Iterable[str | os.PathLike[str]] = (),
    known_keys: Mapping[str, str] | None = None,
) -> list[BatchItem]:
    """Expand files, folders, globs, ``.txt`` lists and URLs into batch items.

    The items of :func:`scan_inputs`, without the list of files passed over.

    Parameters
    ----------
    inputs
        What the user named. A folder is searched recursively for files whose
        extension is in ``extensions`` (hidden files and folders are skipped); a
        pattern with ``*``, ``?`` or ``[`` is a glob (``**`` recurses) filtered the
        same way; a ``.txt`` file lists one path (relative to the list) or URL a line
        (``#`` starts a comment); any other file is taken as it is, whatever its
        extension, so a wrong file fails with its reason instead of vanishing.
    extensions
        Lower-case extensions, with the dot, that a folder or glob search keeps.
    exclude
        Folders never searched (the batch's output folder when it sits among the inputs).
    known_keys
        ``source -> key`` from an earlier run's manifest; those keys are kept.

    Returns
    -------
    list of BatchItem
        Sorted by key; each source once.

    Raises
    ------
    InputNotFoundError
        A named path does not exist, or a glob matches nothing.

    Examples
    --------
    >>> [item] = discover_inputs(["https://example.com/img/shirt.jpg?sig=abc"])
    >>> item
    BatchItem(source='https://example.com/img/shirt.jpg#query-sha256=...', key='shirt')
    >>> item.location
    'https://example.com/img/shirt.jpg?sig=abc'
    """
    return scan_inputs(inputs, extensions=extensions, exclude=exclude, known_keys=known_keys).items


@dataclass
class _Found:
    """One candidate item while scanning: its source, candidate key and where it was named."""

    source: str
    key: str
    origin: str | None = None


def scan_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    extensions: Iterable[str] = limits.INPUT_EXTENSIONS,
    exclude: Iterable[str | os.PathLike[str]] = (),
    known_keys: Mapping[str, str] | None = None,
) -> Discovery:
    """Expand the inputs (see :func:`discover_inputs`) and say which files were passed over.

    A file inside a named folder, or matched by a glob, whose extension is not a
    supported image type is not an item; it is listed in :attr:`Discovery.skipped`
    with the reason, so that a batch can report it instead of dropping it silently.

    Returns
    -------
    Discovery

    Raises
    ------
    InputNotFoundError
        A named path does not exist, or a glob matches nothing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.jpg", "b.gif", "notes.txt"):
    ...     _ = (root / name).write_bytes(b"")
    >>> found = scan_inputs([root])
    >>> [i.key for i in found.items]
    ['a']
    >>> for s in found.skipped:
    ...     print(pathlib.Path(s.source).name, s.reason)
    b.gif unsupported file type '.gif'
    notes.txt unsupported file type '.txt'

    """
    exts = frozenset(e.lower() for e in extensions)
    skip = [Path(p).resolve() for p in exclude]
    found: dict[str, _Found] = {}  # source -> candidate, first naming wins
    urls: dict[str, str] = {}  # safe source -> full URL
    passed_over: dict[str, SkippedInput] = {}
    for spec in inputs:
        text = os.fspath(spec)
        candidates, skipped = _expand(text, exts, skip)
        for cand in candidates:
            if is_url(cand.source):
                full, cand.source = cand.source, safe_source(cand.source)
                urls[cand.source] = full
            found.setdefault(cand.source, cand)
        for entry in skipped:
            passed_over.setdefault(entry.source, entry)
    items = assign_keys({s: c.key for s, c in found.items()}, known_keys=known_keys)
    return Discovery(
        [BatchItem(i.source, i.key, urls.get(i.source), found[i.source].origin) for i in items],
        sorted((s for s in passed_over.values() if s.source not in found), key=lambda s: s.source),
    )


def _expand(
    text: str, exts: frozenset[str], skip: list[Path]
) -> tuple[list[_Found], list[SkippedInput]]:
    if is_url(text):
        return [_Found(text, _url_key(text))], []
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        base = path.resolve()
        images, skipped = _walk(base, exts, skip)
        return [_Found(str(p), _relative_key(p, base)) for p in images], skipped
    if path.is_file() and path.suffix.lower() == ".txt":
        out = []
        for source, list_base, number in _read_list(path):
            key = _url_key(source) if list_base is None else _relative_key(Path(source), list_base)
            out.append(_Found(source, key, f"{text} line {number}"))
        return out, []
    if path.is_file():
        return [_Found(str(path.resolve()), _relative_key(path, None))], []
    if os.path.lexists(path) and not _has_magic(text):
        # a FIFO, socket, device or looping link named on purpose: an item, whose
        # reading fails at once saying what it is (never "does not exist")
        return [_Found(os.path.abspath(path), _relative_key(path, None))], []
    if _has_magic(text):
        return _expand_glob(text, exts, skip)
    raise InputNotFoundError(
        f"Input {text!r} does not exist. Name image files, folders, glob patterns "
        "(quote them), .txt lists of paths or URLs, or http(s) URLs."
    )


def _expand_glob(
    pattern: str, exts: frozenset[str], skip: list[Path]
) -> tuple[list[_Found], list[SkippedInput]]:
    expanded = os.path.expanduser(pattern)
    # the base of a glob is its longest leading part without wildcards
    parts = Path(expanded).parts
    fixed = []
    for part in parts:
        if _has_magic(part):
            break
        fixed.append(part)
    base = Path(*fixed) if fixed else Path()
    matches = []
    skipped = []
    for match in sorted(glob.glob(expanded, recursive=True)):
        p = Path(match)
        if p.is_dir() or p.name.startswith("."):
            continue
        resolved = _resolved(p)
        if any(s == resolved or s in resolved.parents for s in skip):
            continue
        odd = _not_regular(p)
        if odd is not None:  # named as found: a link to /dev/zero is not "/dev/zero"
            skipped.append(SkippedInput(os.path.abspath(p), odd))
            continue
        if not _is_image_name(p.name, exts):
            skipped.append(SkippedInput(str(resolved), _unsupported(p.name)))
            continue
        matches.append(_Found(str(resolved), _relative_key(p, base)))
    if not matches:
        raise InputNotFoundError(
            f"The pattern {pattern!r} matches no image files (extensions: "
            f"{', '.join(sorted(exts))})."
        )
    return matches, skipped


def _resolved(path: Path) -> Path:
    """``path`` resolved, or made absolute when it is a symbolic link that loops."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, on Pythons before 3.13
        return Path(os.path.abspath(path))


def _suffix_hash(source: str) -> str:
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]


def assign_keys(
    candidates: Mapping[str, str], *, known_keys: Mapping[str, str] | None = None
) -> list[BatchItem]:
    """Give every source a unique output key, stable across runs.

    Keys are compared case-insensitively (so outputs do not collide on macOS or
    Windows). Sources sharing a candidate key all get their extension added
    (``x.jpg`` and ``x.png`` -> ``x_jpg``, ``x_png``); when that still collides, a
    short hash of the source is added. Keys in ``known_keys`` are honoured first.

    Parameters
    ----------
    candidates
        ``source -> candidate key``.
    known_keys
        ``source -> key`` from an earlier run.

    Returns
    -------
    list of BatchItem
        Sorted by key.

    Examples
    --------
    >>> items = assign_keys({"/a/x.jpg": "x", "/a/x.png": "x", "/b/y.jpg": "y"})
    >>> [(i.source, i.key) for i in items]
    [('/a/x.jpg', 'x_jpg'), ('/a/x.png', 'x_png'), ('/b/y.jpg', 'y')]
    """
    known = dict(known_keys or {})
    taken: set[str] = set()
    keys: dict[str, str] = {}
    for source in sorted(candidates):
        key = known.get(source)
        if key and key.casefold() not in taken:
            keys[source] = key
            taken.add(key.casefold())
    pending = sorted(s for s in candidates if s not in keys)
    counts: dict[str, int] = {}
    for source in pending:
        c = candidates[source].casefold()
        counts[c] = counts.get(c, 0) + 1
    for source in pending:
        key = candidates[source]
        if key.casefold() in taken or counts[key.casefold()] > 1:
            ext = os.path.splitext(urllib.parse.urlsplit(source).path)[1].lstrip(".")
            key = f"{key}_{ext.lower()}" if ext else key
            if key.casefold() in taken:
                key = f"{candidates[source]}-{_suffix_hash(source)}"
        taken.add(key.casefold())
        keys[source] = key
    # a folder named like the parts folder inside another item's output would mix the two
    for source, key in keys.items():
        parent, _, last = key.rpartition("/")
        if last.casefold() == PARTS_DIR and parent.casefold() in taken:
            keys[source] = f"{key}-{_suffix_hash(source)}"
    return sorted((BatchItem(s, k) for s, k in keys.items()), key=lambda i: (i.key, i.source))


def discover_results(
    root: str | os.PathLike[str], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[BatchItem]:
    """Every saved result folder under ``root`` (see :func:`clothseg_tools.result.find_results`).

    Parameters
    ----------
    root
        The output folder of ``clothseg segment`` (or one result folder).
    exclude
        Folders not searched.

    Returns
    -------
    list of BatchItem
        ``source`` is the result folder's absolute path, ``key`` its path relative to
        ``root`` (``"."`` when ``root`` itself is a result folder); sorted by key.

    Raises
    ------
    InputNotFoundError
        ``root`` is not a folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputNotFoundError(
            f"{os.fspath(root)!r} is not a folder; name the output folder of 'clothseg segment'."
        )
    base = base.resolve()
    return [
        BatchItem(str(folder), folder.relative_to(base).as_posix())
        for folder in find_results(base, exclude=exclude)
    ]


def no_results_message(root: str | os.PathLike[str]) -> str:
    """The one line every command says about a folder without saved results.

    When the segmentation manifest records failures, the line says how many and
    where the reasons are.

    Examples
    --------
    >>> import tempfile
    >>> no_results_message(tempfile.mkdtemp()).endswith("run 'clothseg segment' first.")
    True
    """
    shown = os.fspath(root)
    manifest = manifest_path(root)
    failed = sum(r.get("status") == "failed" for r in read_manifest(manifest).values())
    if failed:
        return (
            f"{shown} holds no results: the {failed} images in {manifest} failed; see their "
            "reasons there, then rerun 'clothseg segment' with --retry-failed."
        )
    return (
        f"{shown} holds no results (no folder with {RESULT_NAME} below it); "
        "run 'clothseg segment' first."
    )


def require_results(
    root: str | os.PathLike[str], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[BatchItem]:
    """:func:`discover_results`, refusing a folder that holds none.

    Raises
    ------
    InputNotFoundError
        ``root`` is not a folder, or holds no saved result (message from
        :func:`no_results_message`).

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     require_results(tempfile.mkdtemp())
    ... except InputNotFoundError as exc:
    ...     print(str(exc).split(" holds ")[1])
    no results (no folder with result.json below it); run 'clothseg segment' first.
    """
    items = discover_results(root, exclude=exclude)
    if not items:
        raise InputNotFoundError(no_results_message(root))
    return items
