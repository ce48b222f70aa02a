"""Griffe extension: render the package's reStructuredText habits as Markdown.

The docstrings follow numpydoc, which is written in reStructuredText: Sphinx roles
(``:func:`merge```, ``:class:`~clothseg_tools.MaskSet```), literal blocks introduced by
``::`` and simple tables framed by ``=====  =====`` lines. mkdocstrings renders
docstrings as Markdown, so before they are parsed this extension rewrites

- each role into a cross-reference to the object it names, resolved in the scope of
  the docstring's object the way Sphinx would (relative names, ``~`` for the short
  title); a target that is not in the rendered reference stays plain code instead of
  failing the build (``optional`` autorefs), and names outside the package (``requests.
  Session``, ``ValueError``) are plain code;
- ``text::`` into ``text:`` (the indented block after it is already a Markdown code
  block), and a lone ``::`` line into nothing;
- simple tables into Markdown tables (a row whose first cell is empty continues the
  row above).

Enabled in ``mkdocs.yml`` under the python handler's ``extensions``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE_RE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|const):`(?P<target>[^`]+)`")
TABLE_BORDER_RE = re.compile(r"^(?P<indent>\s*)=+(?: +=+)+\s*$")
PACKAGE = "clothseg_tools"


def _lookup(root: griffe.Module, path: str) -> Any | None:
    """The object at dotted ``path`` under the package, following aliases; else None."""
    parts = path.split(".")
    if parts[0] != root.name:
        return None
    obj: Any = root
    try:
        for part in parts[1:]:
            obj = obj.members[part]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return obj


def _identifier(obj: Any) -> str | None:
    """The path under which ``obj`` is rendered: its final target's path."""
    try:
        target = obj.final_target if obj.is_alias else obj
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    return str(target.path)


def _resolve(scope: griffe.Object, target: str, root: griffe.Module) -> str | None:
    """Resolve a role's target as Sphinx would, from the docstring owner's scope."""
    if target.startswith("."):
        # relative to the module's package: ".models" inside engines/local/__init__.py
        module = scope if scope.is_module else scope.module
        base = module.path if module.is_package else module.path.rsplit(".", 1)[0]
        dots = len(target) - len(target.lstrip("."))
        base = base.rsplit(".", dots - 1)[0] if dots > 1 else base
        obj = _lookup(root, f"{base}.{target.lstrip('.')}")
        return _identifier(obj) if obj is not None else None
    if target.startswith(f"{PACKAGE}."):
        obj = _lookup(root, target)
        return _identifier(obj) if obj is not None else None
    head, _, rest = target.partition(".")
    current: griffe.Object | None = scope
    while current is not None:
        try:
            resolved = current.resolve(head)
        except griffe.NameResolutionError:
            resolved = None
        if resolved is not None:
            obj = _lookup(root, f"{resolved}.{rest}" if rest else resolved)
            if obj is not None:
                return _identifier(obj)
            return None
        current = current.parent
    return None


def _rewrite_roles(text: str, scope: griffe.Object, root: griffe.Module) -> str:
    def replace(match: re.Match[str]) -> str:
        raw = match["target"].strip()
        short = raw.startswith("~")
        target = raw.lstrip("~")
        title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
        identifier = _resolve(scope, target, root)
        if identifier is None:
            return f"`{title}`"
        return (
            f'<autoref identifier="{html.escape(identifier)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>"
        )

    return ROLE_RE.sub(replace, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _opens_literal_block(lines: list[str], i: int) -> bool:
    """Whether line ``i`` ends with ``::`` and an indented block follows it, as in RST
    (so doctest output such as ``tops:214,39,40::`` is left alone)."""
    if not lines[i].rstrip().endswith("::"):
        return False
    following = [line for line in lines[i + 1 :] if line.strip()]
    return bool(following) and _indent(following[0]) > _indent(lines[i])


def _rewrite_literal_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    for i, line in enumerate(lines):
        if _opens_literal_block(lines, i):
            if line.strip() == "::":
                continue
            line = line.rstrip()[:-1]
        out.append(line)
    return out


def _columns(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, columns: list[tuple[int, int]]) -> list[str]:
    """Split a row at the column starts; the last column takes the rest of the line."""
    starts = [start for start, _ in columns] + [len(line) + 1]
    return [line[starts[k] : starts[k + 1]].strip() for k in range(len(columns))]


def _markdown_table(block: list[str]) -> list[str]:
    """A Markdown table from the lines of a simple table (borders included)."""
    columns = _columns(block[0])
    borders = [k for k, line in enumerate(block) if TABLE_BORDER_RE.match(line)]
    header: list[str] = [""] * len(columns)
    body_start = 1
    if len(borders) >= 3:  # top border, header, border, rows, bottom border
        header = _cells(block[1], columns)
        body_start = borders[1] + 1
    rows: list[list[str]] = []
    for line in block[body_start:]:
        if TABLE_BORDER_RE.match(line):
            continue
        cells = _cells(line, columns)
        if rows and not cells[0]:  # continuation line: first column empty
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [fmt(header), "| " + " | ".join("---" for _ in columns) + " |", *map(fmt, rows)]


def _rewrite_tables(lines: list[str]) -> list[str]:
    """Turn each simple table (top border to the last border before a blank line)
    into a Markdown table."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = TABLE_BORDER_RE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        end = i
        j = i + 1
        while j < len(lines) and lines[j].strip():
            if TABLE_BORDER_RE.match(lines[j]):
                end = j
            j += 1
        block = [line[len(indent) :] for line in lines[i : end + 1]]
        if out and out[-1].strip():
            out.append("")
        out.extend(indent + row for row in _markdown_table(block))
        i = end + 1
        if i < len(lines) and lines[i].strip():
            out.append("")
    return out


def rewrite(text: str, scope: griffe.Object, root: griffe.Module) -> str:
    """The Markdown form of one docstring."""
    lines = text.split("\n")
    lines = _rewrite_tables(_rewrite_literal_blocks(lines))
    return _rewrite_roles("\n".join(lines), scope, root)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the package once it is loaded (see the module notes)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != PACKAGE:
            return
        self._walk(pkg, pkg)

    def _walk(self, obj: griffe.Object, root: griffe.Module) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value, obj, root)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, root)
