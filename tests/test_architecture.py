"""The package's import graph: no cycles, and no arrow from a lower layer to a higher one.

The graph is built from the source with :mod:`ast`, so it sees every import, at module
level and inside functions alike, without importing anything. Imports under
``if TYPE_CHECKING:`` are left out (they never run), and so are the imports of a
module-level ``__getattr__`` (PEP 562), which only keep an old public name importable
from its old module. An import inside a function that only keeps ``import
clothseg_tools`` light says so with a ``# lazy:`` comment on its line (or the line above)
and is left out of the cycle check, never out of the layer check.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "clothseg_tools"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layer of each module or package (the longest matching prefix wins). A module may
#: import its own layer and the ones below it, never one above.
LAYERS: dict[str, int] = {
    # 0: facts
    "_version": 0,
    "contract": 0,
    "task": 0,
    "classes": 0,
    "limits": 0,
    "errors": 0,
    "labelsets": 0,
    # 1: bytes and arrays in, checked; atomic writes
    "_convert": 1,
    "_io": 1,
    "_pool": 1,  # the thread loop and rate limiter under api and batch
    "inputs": 1,
    "decode": 1,
    "zipmasks": 1,
    # 2: the central types
    "masks": 2,
    "parsing": 2,
    # 3: the vectorized core and the exports
    "ops": 3,
    "composite": 3,
    "_foreground": 3,
    "stats": 3,
    "tryon": 3,
    "export": 3,
    # the saved result folder: built by the client and the engines' runner, read by the
    # exports, so it sits with the core it needs (masks, _io), below api and engines
    "result": 3,
    # 4: image -> masks, in-process or over HTTP
    "engines": 4,
    "api": 4,
    # 5: one photo from whichever answers (the service or an engine)
    "segmentation": 5,
    # 6: folders of work
    "batch": 6,
    # 7: the faces
    "server": 7,
    "report": 7,
    "demo": 7,
    "cli": 7,
}

#: Packages of the same layer that must still not import each other (DESIGN.md:
#: engines never reach for HTTP).
FORBIDDEN: tuple[tuple[str, str], ...] = (("engines", "api"), ("engines", "server"))


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str  # dotted module name without the package prefix ("api._client")
    target: str  # the imported module ("" is the package root)
    line: int
    lazy: bool  # inside a function, marked "# lazy:" to keep the package import light
    in_function: bool


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


@functools.cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name, _ = _module_name(path)
        found[name] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        if hasattr(sub, "lineno"):
                            lines.add(sub.lineno)
    return lines


def _alias_lines(tree: ast.Module) -> set[int]:
    """Lines of a module-level ``__getattr__``: re-exports of old names, not dependencies."""
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lines.update(sub.lineno for sub in ast.walk(node) if hasattr(sub, "lineno"))
    return lines


def _function_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


def _targets(name: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    known = modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                yield alias.name[len(PACKAGE) + 1 :]
        return
    if node.level:
        base = name.split(".") if name else []
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        if node.module:
            base += node.module.split(".")
        target = ".".join(base)
    elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
        target = node.module[len(PACKAGE) + 1 :]
    else:
        return
    for alias in node.names:
        sub = f"{target}.{alias.name}" if target else alias.name
        yield sub if sub in known else target


@functools.cache
def parsed(name: str) -> tuple[ast.Module, tuple[str, ...]]:
    """The syntax tree and the lines of one module."""
    source = modules()[name].read_text(encoding="utf-8")
    return ast.parse(source), tuple(source.splitlines())


def _marked_lazy(lines: tuple[str, ...], lineno: int) -> bool:
    """A ``# lazy:`` comment on the import's line or above its block of imports."""
    if "# lazy:" in lines[lineno - 1]:
        return True
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith(("from ", "import ")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("# lazy:")


@functools.cache
def edges() -> tuple[Edge, ...]:
    found: list[Edge] = []
    for name, path in modules().items():
        tree, lines = parsed(name)
        skipped = _type_checking_lines(tree) | _alias_lines(tree)
        in_function = _function_lines(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skipped:
                continue
            lazy = _marked_lazy(lines, node.lineno) and node.lineno in in_function
            for target in _targets(name, is_package, node):
                if target != name:
                    found.append(
                        Edge(name, target, node.lineno, lazy, node.lineno in in_function)
                    )
    return tuple(found)


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_every_module_has_a_layer() -> None:
    missing = [m for m in modules() if m and layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS (and docs/architecture.md): {missing}"


def test_no_module_imports_the_package_root() -> None:
    bad = [f"{e.source}:{e.line}" for e in edges() if e.target == ""]
    assert not bad, f"import the defining module instead of the package root: {bad}"


def test_lower_layers_never_import_higher_ones() -> None:
    bad = []
    for e in edges():
        if not e.source or not e.target:
            continue
        low, high = layer_of(e.source), layer_of(e.target)
        if low is not None and high is not None and high > low:
            bad.append(f"{e.source} (layer {low}) -> {e.target} (layer {high}), line {e.line}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_forbidden_neighbours(importer: str, imported: str) -> None:
    bad = [
        f"{e.source} -> {e.target} (line {e.line})"
        for e in edges()
        if _top(e.source) == importer and _top(e.target) == imported
    ]
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> modules it imports; a package's ``__init__`` counts as the package."""
    graph: dict[str, set[str]] = {}
    for e in edges():
        if e.lazy or not e.source:
            continue
        graph.setdefault(e.source, set()).add(e.target)
    return graph


def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_imports_inside_functions_say_why() -> None:
    unmarked = [f"{e.source}:{e.line}" for e in edges() if e.in_function and not e.lazy]
    assert not unmarked, (
        "import at module level, or mark the import '# lazy: <why>' when it keeps "
        f"'import clothseg_tools' light: {unmarked}"
    )


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# -- the contract's literals have one home ------------------------------------------------

#: Facts of the service contract that must be written as a literal in one module only.
CONTRACT_LITERALS = (
    "/api/tasks/visual/clothing-segmentation",
    "X-API-KEY",
    "CLOTHSEG_API_KEY",
    "CLOTHSEG_BASE_URL",
    "CLOTHSEG_REPLAY_DIR",
    "CLOTHSEG_SERVER_KEYS",
)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def literal_homes(literal: str) -> set[str]:
    """Modules with a string constant (docstrings aside) that contains ``literal``."""
    homes: set[str] = set()
    for name in modules():
        tree, _ = parsed(name)
        docs = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and literal in node.value
            ):
                homes.add(name)
    return homes


@pytest.mark.parametrize("literal", CONTRACT_LITERALS)
def test_contract_literal_has_one_home(literal: str) -> None:
    assert literal_homes(literal) == {"contract"}


def test_contract_literals_are_the_contracts() -> None:
    from clothseg_tools import contract

    values = {
        contract.ENDPOINT,
        contract.KEY_HEADER,
        contract.KEY_ENV,
        contract.URL_ENV,
        contract.REPLAY_DIR_ENV,
        contract.SERVER_KEYS_ENV,
    }
    assert values == set(CONTRACT_LITERALS)


# -- the architecture page says what the test enforces --------------------------------------


def test_architecture_page_lists_the_layers() -> None:
    import re

    page = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented: dict[str, int] = {}
    for layer, names in re.findall(r"^\| (\d) \| ([^|]+) \|", page, flags=re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", names):
            documented[name] = int(layer)
    assert documented == LAYERS
