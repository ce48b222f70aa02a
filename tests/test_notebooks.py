"""The notebooks run as written: each executes top to bottom, offline, without an error.

Notebooks are kept in git without outputs. Each is executed with nbclient on a kernel
of this interpreter (a kernelspec written into a temporary folder, so the test never
depends on which kernels the machine has installed), in a temporary working folder,
with matplotlib's Agg backend. The notebooks check their own results with ``assert``
cells, so a wrong result fails here as well as a crash.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from _engine_support import needs_local_engine
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
KERNEL_NAME = "clothseg-tests"
# a notebook runs in well under a minute; allow for a loaded machine
CELL_TIMEOUT = 240


def test_the_three_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOK_FILES] == [
        "01_quickstart.ipynb",
        "02_tryon_preprocessing.ipynb",
        "03_dataset_labeling.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [], f"{path.name}: a cell was committed with outputs"
        assert cell.execution_count is None, f"{path.name}: a cell has an execution count"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernelspec that starts ipykernel on this interpreter (the project's venv)."""
    spec_dir = tmp_path_factory.mktemp("kernels") / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "clothseg_tools tests",
        "language": "python",
        # headless plots, and no stray GUI or network use from the kernel's libraries
        "env": {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return [str(spec_dir.parent)]


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{output.get('ename')}: {output.get('evalue')}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


@pytest.mark.slow
@needs_local_engine
@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, kernel_dirs: list[str], tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs),
    )
    client = NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    # raises CellExecutionError, with the cell and its traceback, when a cell fails;
    # cleanup_kc: shut the kernel down and close its channels even though the test
    # made the kernel manager
    client.execute(cleanup_kc=True)
    assert not manager.has_kernel
    assert _errors(nb) == []
    # every code cell ran, in order
    counts = [cell.execution_count for cell in nb.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
