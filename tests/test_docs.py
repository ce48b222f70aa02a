"""The documentation runs as written.

- README: the three one-line commands, the library example (run), the CLI example (run
  through click), its links and picture.
- docs/*.md: every ```python block of a page runs, in order, in one namespace per page,
  in a temporary folder holding the ``photo.jpg`` the pages use.
- The site: ``mkdocs build --strict`` succeeds; the API reference renders every name
  ``clothseg_tools`` exports, the troubleshooting page has a section and a real message
  for every error class, the CLI reference has every command.
- The griffe extension that turns the docstrings' reStructuredText into Markdown.
"""

from __future__ import annotations

import html
import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from _engine_support import needs_local_engine
from click.testing import CliRunner
from PIL import Image
from skimage import data

import clothseg_tools
from clothseg_tools import engines, errors
from clothseg_tools.batch import InputNotFoundError
from clothseg_tools.cli import main
from clothseg_tools.demo import sample_photos

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
GUIDE_PAGES = sorted(p for p in DOCS.glob("*.md"))
FENCE_RE = re.compile(
    r"^(?P<skip><!-- not run -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)^```", re.M | re.S
)

INSTALL = 'python -m pip install -e ".[all]"'
MAIN_JOB = "clothseg demo"
TESTS = "python -m pytest"


def fences(text: str, lang: str) -> list[str]:
    """The code of every fenced block of ``lang``, skipping those marked not to run."""
    return [m["code"] for m in FENCE_RE.finditer(text) if m["lang"] == lang and not m["skip"]]


def section(text: str, heading: str) -> str:
    """The text under a ``## heading`` of a Markdown file, up to the next ``## ``."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def load_tool(name: str) -> ModuleType:
    """A module of docs/_tools (they are not a package; mkdocs loads them by path)."""
    path = DOCS / "_tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"docs_tools_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A temporary working folder, no service configured, the engine registry restored."""
    for name in ("CLOTHSEG_API_KEY", "CLOTHSEG_BASE_URL", "CLOTHSEG_REPLAY_DIR"):
        monkeypatch.delenv(name, raising=False)
    # pages may register engines of their own; keep them out of other tests
    monkeypatch.setattr(engines, "_REGISTRY", dict(engines._REGISTRY))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- README ------------------------------------------------------------------------------


def test_readme_has_the_three_commands_exactly() -> None:
    commands = [
        line.strip() for block in fences(README.read_text(), "bash") for line in block.splitlines()
    ]
    for command in (INSTALL, MAIN_JOB, TESTS):
        assert command in commands, f"README lost the one-line command {command!r}"


def test_ci_runs_what_readme_says() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert INSTALL in ci and TESTS in ci
    assert "mkdocs build --strict" in ci


def test_readme_picture_is_committed_and_small() -> None:
    assert "![" in README.read_text() and "docs/images/demo.jpg" in README.read_text()
    picture = DOCS / "images" / "demo.jpg"
    assert picture.stat().st_size < 300 * 1024
    with Image.open(picture) as im:
        assert im.format == "JPEG" and im.width == 3 * im.height  # photo, overlay, cutout


def test_report_screenshots_are_committed_and_small() -> None:
    shots = load_tool("report_screenshot")
    for name, width in shots.SHOTS.items():
        path = shots.IMAGES / name
        assert path.stat().st_size < 300 * 1024, name
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.width == width  # the window it was taken in
        assert f"images/{name}" in (DOCS / "cli.md").read_text()


def test_readme_links_point_at_files() -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("notebooks/") for link in local)
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert missing == []


@pytest.mark.slow
@needs_local_engine
def test_readme_library_example_runs(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = fences(section(README.read_text(), "Library example"), "python")
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10
    sample_photos(offline / "clothseg-demo" / "photos")  # what `clothseg demo` writes first
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "'tops'" in printed and "%" in printed
    # it writes only into the folder it names, never the working folder itself
    example = offline / "clothseg-demo" / "example"
    assert sorted(p.name for p in offline.iterdir()) == ["clothseg-demo"]
    assert (example / "labels.png").is_file()
    saved = clothseg_tools.SegmentationResult.load(example / "astronaut")
    assert saved.masks.classes == clothseg_tools.CLASSES
    assert saved.engine == "local"  # no key configured: the offline engine answered
    assert "import" not in code.replace("import clothseg_tools as cst", "")


@pytest.mark.slow
@needs_local_engine
def test_readme_cli_example_runs(offline: Path) -> None:
    (block,) = fences(section(README.read_text(), "Batch command line"), "bash")
    photos = offline / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astronaut.jpg", quality=92)
    runner = CliRunner()
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert commands[0][:2] == ["clothseg", "segment"]  # segment first, then the rest
    for argv in commands:
        assert argv[0] == "clothseg"
        result = runner.invoke(main, argv[1:])
        assert result.exit_code == 0, (argv, result.output)
    assert (offline / "results" / "astronaut" / "result.json").is_file()
    assert (offline / "results" / "report.html").is_file()


# -- the guide's examples ---------------------------------------------------------------


def test_every_guide_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in GUIDE_PAGES:
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


@pytest.mark.slow
@needs_local_engine
@pytest.mark.parametrize(
    "page", [p for p in GUIDE_PAGES if fences(p.read_text(), "python")], ids=lambda p: p.stem
)
def test_guide_page_examples_run(page: Path, offline: Path) -> None:
    Image.fromarray(data.astronaut()).save(offline / "photo.jpg", quality=92)
    namespace: dict[str, object] = {"__name__": f"__docs_{page.stem}__"}
    for number, code in enumerate(fences(page.read_text(), "python"), 1):
        try:
            exec(compile(code, f"{page.name} (block {number})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, python block {number} failed: {exc!r}") from exc


# -- the built site ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary folder (what .ci/run does)."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _html(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text()


def _text(page_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


@pytest.mark.slow
def test_api_reference_documents_every_exported_name(site: Path) -> None:
    reference = "".join(p.read_text() for p in (site / "reference" / "api").rglob("index.html"))
    ids = set(re.findall(r'id="(clothseg_tools\.[\w.]+)"', reference))
    exports: dict[str, str] = clothseg_tools._EXPORTS
    assert set(exports) == set(clothseg_tools.__all__) - {"__version__"}
    missing = [
        name for name, module in exports.items() if f"clothseg_tools.{module}.{name}" not in ids
    ]
    assert missing == []
    overview = _html(site, "reference/api")
    for name, module in exports.items():
        assert f"clothseg_tools.{module}.{name}" in overview  # linked from the overview


@pytest.mark.slow
def test_api_reference_has_no_raw_restructuredtext(site: Path) -> None:
    for page in (site / "reference" / "api").rglob("index.html"):
        text = _text(page.read_text())
        assert not re.search(r":(func|class|meth|mod|data|attr):`", text), page
        # an RST literal-block marker ("the layout::"), not data such as "tops:214,39,40::"
        assert not re.search(r"(^|[A-Za-z)])::$", text, re.M), page


def _error_classes() -> dict[str, type[BaseException]]:
    found = {
        name: obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, BaseException)
    }
    found["InputNotFoundError"] = InputNotFoundError
    return found


@pytest.mark.slow
def test_troubleshooting_covers_every_error_class(site: Path) -> None:
    page = _html(site, "troubleshooting")
    text = _text(page)
    for name, cls in _error_classes().items():
        assert f'<h3 id="{name.lower()}">' in page, f"no section for {name}"
        assert f"{cls.__module__}.{name}" in text
        if name != "ClothsegError":  # the root is never raised by itself
            assert re.search(rf"^{name}: \S", text, re.M), f"no example message for {name}"


@pytest.mark.slow
def test_cli_reference_has_every_command(site: Path) -> None:
    text = _text(_html(site, "reference/cli"))
    assert "UNSET" not in text  # click's sentinel for "no default" must not leak into the page
    for command in main.commands:
        assert f"clothseg {command}" in text
        for param in main.commands[command].params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in text, f"clothseg {command} {opt}"


# -- the tools ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def griffe_rst() -> Iterator[ModuleType]:
    yield load_tool("griffe_rst")


def test_simple_tables_become_markdown_tables(griffe_rst: ModuleType) -> None:
    rst = [
        "Intro:",
        "",
        "====  ===============",
        "mode  rule",
        "====  ===============",
        "L     kept",
        "RGB   the brightest",
        "      channel",
        "====  ===============",
        "",
        "After.",
    ]
    assert griffe_rst._rewrite_tables(rst) == [
        "Intro:",
        "",
        "| mode | rule |",
        "| --- | --- |",
        "| L | kept |",
        "| RGB | the brightest channel |",
        "",
        "After.",
    ]


def test_headerless_tables_and_pipes(griffe_rst: ModuleType) -> None:
    rst = ["=====  =====", "a|b    x", "=====  ====="]
    assert griffe_rst._rewrite_tables(rst) == [
        "|  |  |",
        "| --- | --- |",
        "| a\\|b | x |",
    ]


def test_literal_block_markers(griffe_rst: ModuleType) -> None:
    lines = ["From the shell::", "", "    clothseg serve", "", "::", "", "    tree"]
    assert griffe_rst._rewrite_literal_blocks(lines) == [
        "From the shell:",
        "",
        "    clothseg serve",
        "",
        "",
        "    tree",
    ]


def test_double_colons_without_a_block_are_kept(griffe_rst: ModuleType) -> None:
    doctest_output = [">>> print(cvat_labelmap(['tops']))", "background:0,0,0::", "tops:2::"]
    assert griffe_rst._rewrite_literal_blocks(doctest_output) == doctest_output


def test_roles_resolve_in_the_docstring_scope(griffe_rst: ModuleType) -> None:
    import griffe

    package = griffe.load("clothseg_tools", search_paths=[str(ROOT)])
    ops = package["ops"]
    text = griffe_rst.rewrite(
        ":func:`merge`, :class:`~clothseg_tools.MaskSet`, :mod:`.stats`, "
        ":class:`requests.Session`, :func:`no_such_function`",
        ops,
        package,
    )
    assert '<autoref identifier="clothseg_tools.ops.merge" optional><code>merge</code>' in text
    assert 'identifier="clothseg_tools.masks.MaskSet" optional><code>MaskSet</code>' in text
    assert 'identifier="clothseg_tools.stats" optional><code>stats</code>' in text
    assert "`requests.Session`" in text and "`no_such_function`" in text
    assert ":func:" not in text and ":class:" not in text


# -- the API contract page -----------------------------------------------------------------


def test_api_contract_page_states_what_the_code_speaks() -> None:
    from clothseg_tools import contract

    page = (DOCS / "api-contract.md").read_text()
    assert f"`{contract.KEY_HEADER}`" in page
    assert f"`POST {contract.ENDPOINT}`" in page
    assert f"`GET {contract.ENDPOINT}/{{task_id}}`" in page
    assert "<!-- option-table -->" in page  # the options come from contract.OPTIONS


@pytest.mark.slow
def test_api_contract_page_lists_every_option_of_the_contract(site: Path) -> None:
    from clothseg_tools import contract

    text = _text(_html(site, "api-contract"))
    for spec in contract.OPTIONS.values():
        assert spec.name in text and spec.meaning in text
        for value, meaning in spec.values.items():
            assert f"{value}{' (default)' if value == spec.default else ''}: {meaning}" in text


def test_serve_help_points_at_a_docs_page_that_exists() -> None:
    pytest.importorskip("clothseg_tools.server.cli")
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    pages = re.findall(r"docs/[\w/-]+\.md", result.output)
    assert pages and all((ROOT / p).is_file() for p in pages), result.output
    assert "API.md" not in result.output
