"""MkDocs hooks: the parts of the docs that are generated from the code at build time.

- ``troubleshooting.md``: the error hierarchy, and under each error's heading its place
  in the hierarchy, its HTTP status, its docstring and a real message produced by
  running the library (:mod:`error_examples`). The build fails when an error class has
  no section, a section names no error class, or an example raises another class.
- ``<!-- option-table -->`` on any page: the request options from the contract's table
  (:data:`clothseg_tools.contract.OPTIONS`); ``<!-- option-table: NAME -->`` gives one
  option's values.
- ``architecture.md``: ``<!-- module-map -->`` becomes a table of every module of the
  package with its docstring's first paragraph (read from the source, not imported).
- ``reference/api/index.md``: a table of every name ``clothseg_tools`` exports, each
  linked to its reference entry; strict mode fails the build when one is not rendered.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

# mkdocs loads this file by path; its sibling modules are found through sys.path
sys.path.insert(0, str(Path(__file__).resolve().parent))

import error_examples
from griffe_rst import ROLE_RE

import clothseg_tools
from clothseg_tools import contract, errors
from clothseg_tools.batch import InputNotFoundError

TREE_MARKER = "<!-- error-tree -->"
NAMES_MARKER = "<!-- public-names -->"
MODULES_MARKER = "<!-- module-map -->"
OPTIONS_RE = re.compile(r"<!-- option-table(?:: (?P<name>\w+))? -->")
HEADING_RE = re.compile(r"^### (?P<name>[A-Za-z]+Error)\s*$", re.MULTILINE)
STATUS_CODES = (400, 401, 403, 404, 413, 415, 422, 429, 500, 502, 503, 504)


def error_classes() -> dict[str, type[BaseException]]:
    """Every error class a user can meet: ``clothseg_tools.errors`` and the batch's."""
    found = {
        name: obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, BaseException)
    }
    found[InputNotFoundError.__name__] = InputNotFoundError
    return found


def _plain_roles(text: str) -> str:
    """Sphinx roles as code spans: ``:class:`~a.B``` -> ```B```."""

    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        return f"`{target.lstrip('~').rsplit('.', 1)[-1] if target.startswith('~') else target}`"

    return ROLE_RE.sub(replace, text)


def _summary(obj: Any) -> str:
    """The first paragraph of a docstring, on one line, roles as code."""
    doc = inspect.getdoc(obj) or ""
    return _plain_roles(" ".join(doc.split("\n\n")[0].split()))


def _link(cls: type, known: dict[str, type[BaseException]]) -> str:
    name = cls.__name__
    return f"[`{name}`](#{name.lower()})" if name in known else f"`{name}`"


def _statuses(cls: type) -> list[int]:
    """The HTTP statuses that map to ``cls``: its own, or those ``status_error`` gives it."""
    codes = [code for code in STATUS_CODES if type(errors.status_error(code, "")) is cls]
    own = getattr(cls, "status", None)
    if not codes and isinstance(own, int):
        codes = [own]
    return codes


def _source_order(cls: type) -> tuple[bool, int]:
    """Classes of ``errors`` in the order they are defined there, others after them."""
    return (cls.__module__ != errors.__name__, inspect.getsourcelines(cls)[1])


def error_tree(known: dict[str, type[BaseException]]) -> str:
    """A nested list of the hierarchy, from ClothsegError down, with summaries."""
    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        lines.append(f"{'    ' * depth}- {_link(cls, known)}: {_summary(cls)}")
        children = [c for c in known.values() if cls in c.__bases__]
        for child in sorted(children, key=_source_order):
            walk(child, depth + 1)

    walk(errors.ClothsegError, 0)
    return "\n".join(lines)


def error_section(
    cls: type[BaseException],
    known: dict[str, type[BaseException]],
    example: tuple[str, str] | None,
) -> str:
    """What the page shows under an error's heading before the hand-written advice."""
    bases = ", ".join(_link(base, known) for base in cls.__bases__)
    facts = [f"`{cls.__module__}.{cls.__name__}`", f"subclass of {bases}"]
    if codes := _statuses(cls):
        facts.append("HTTP " + " / ".join(map(str, codes)))
    parts = [" · ".join(facts), "", _summary(cls)]
    if example is not None:
        code, line = example
        parts += ["", "```text", f">>> {code}", line, "```"]
    return "\n".join(parts)


def troubleshooting(markdown: str) -> str:
    """Fill in the troubleshooting page (see the module notes)."""
    known = error_classes()
    headings = [m["name"] for m in HEADING_RE.finditer(markdown)]
    missing = [name for name in known if name not in headings]
    unknown = [name for name in headings if name not in known]
    twice = sorted({name for name in headings if headings.count(name) > 1})
    if missing or unknown or twice or TREE_MARKER not in markdown:
        raise PluginError(
            "troubleshooting.md must have one '### <Error>' section per error class and the "
            f"{TREE_MARKER} marker; missing sections: {missing}, sections for unknown "
            f"classes: {unknown}, repeated: {twice}."
        )
    no_example = sorted(set(known) - set(error_examples.EXAMPLES) - {"ClothsegError"})
    if no_example:
        raise PluginError(f"error_examples.py has no example for {no_example}.")
    try:
        examples = error_examples.collect()
    except RuntimeError as exc:
        raise PluginError(str(exc)) from exc

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        return f"{match[0]}\n\n{error_section(known[name], known, examples.get(name))}\n"

    markdown = HEADING_RE.sub(fill, markdown)
    return markdown.replace(TREE_MARKER, error_tree(known))


def public_names() -> str:
    """A table of ``clothseg_tools.__all__``, grouped by the module that defines each."""
    exports: dict[str, str] = clothseg_tools._EXPORTS
    rows = ["| name | what it is |", "| --- | --- |"]
    for name, module in exports.items():
        value = getattr(clothseg_tools, name)
        if inspect.isclass(value) or inspect.isroutine(value):
            what = _summary(value)
        else:
            what = f"`{type(value).__name__}` constant"
        rows.append(f"| [`{name}`][clothseg_tools.{module}.{name}] | {what} |")
    return "\n".join(rows)


def option_table(name: str | None = None) -> str:
    """The contract's options as a Markdown table (or one option's values)."""
    if name is not None:
        if name not in contract.OPTIONS:
            raise PluginError(f"option-table names {name!r}, not an option of the contract.")
        spec = contract.OPTIONS[name]
        rows = [f"| `{name}` | meaning |", "| --- | --- |"]
        for value, text in spec.values.items():
            default = " (default)" if value == spec.default else ""
            rows.append(f"| {value}{default} | {text} |")
        return "\n".join(rows)
    rows = ["| option | chooses | values |", "| --- | --- | --- |"]
    for spec in contract.OPTIONS.values():
        values = "; ".join(
            f"{v}{' (default)' if v == spec.default else ''}: {text}"
            for v, text in spec.values.items()
        )
        rows.append(f"| `{spec.name}` | {spec.meaning} | {values} |")
    return "\n".join(rows)


def module_map() -> str:
    """Every module of the package and the first paragraph of its docstring."""
    import ast

    root = Path(clothseg_tools.__file__).resolve().parent
    rows = ["| module | what it is |", "| --- | --- |"]
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        first = " ".join(doc.strip().split("\n\n", 1)[0].split())
        if not first:
            raise PluginError(f"{path} has no module docstring for the architecture page.")
        rows.append(f"| `{'.'.join(parts)}` | {_plain_roles(first).replace('|', '/')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    """Generate the pages' marked parts."""
    markdown = OPTIONS_RE.sub(lambda m: option_table(m["name"]), markdown)
    uri = page.file.src_uri
    if uri == "architecture.md":
        if MODULES_MARKER not in markdown:
            raise PluginError(f"architecture.md lost its {MODULES_MARKER} marker.")
        return markdown.replace(MODULES_MARKER, module_map())
    if uri == "troubleshooting.md":
        return troubleshooting(markdown)
    if uri == "reference/api/index.md":
        if NAMES_MARKER not in markdown:
            raise PluginError(f"reference/api/index.md lost its {NAMES_MARKER} marker.")
        return markdown.replace(NAMES_MARKER, public_names())
    return markdown
