"""The tutorial notebooks: committed clean, and they run from top to bottom.

Every `notebooks/*.ipynb` is picked up, so a new notebook is tested as soon as it exists.

1. The committed file is valid nbformat 4, stripped of outputs and execution counts, and has exactly
   one `parameters`-tagged cell, its first code cell (papermill injects values after it).
2. papermill executes it with the small parameters of `tests/notebook_params.py` (kernel `python3`,
   working directory `notebooks/`); any exception fails the test.
3. nbval re-executes papermill's copy in lax mode and compares the cells marked
   `# NBVAL_CHECK_OUTPUT` with papermill's outputs, so those cells must print the same on every run.
   The copy carries the injected small parameters, which keeps this second run short too.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from notebook_params import SMALL_PARAMETERS, small_parameters

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is not needed; fail fast instead of retrying
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
IMAGE_DIR = ROOT / "images"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
# With the small parameters a notebook needs seconds; this much means they no longer keep it small.
TIME_LIMIT_S = 240
CELL_TIMEOUT_S = 600
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags"}

pytestmark = pytest.mark.slow
by_name = pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])

_executed: dict[str, Path | str] = {}  # notebook name -> executed copy, or why it failed


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _parameter_names(notebook: nbformat.NotebookNode) -> set[str]:
    """Names assigned in the notebook's parameters cell."""
    cell = next(c for c in _code_cells(notebook) if "parameters" in c.metadata.get("tags", []))
    names = set()
    for node in ast.parse(cell.source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


@pytest.fixture(scope="module")
def executed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("executed_notebooks")


def _execute(notebook: Path, directory: Path) -> Path:
    """Run `notebook` once with papermill (later calls reuse the copy) and return the executed copy."""
    if notebook.name not in _executed:
        import papermill

        output = directory / notebook.name
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=small_parameters(notebook.name),
                kernel_name=KERNEL,
                cwd=str(NOTEBOOK_DIR),
                progress_bar=False,
                execution_timeout=CELL_TIMEOUT_S,
            )
        except Exception as error:
            _executed[notebook.name] = f"{type(error).__name__}: {error}"
            raise
        _executed[notebook.name] = output
        print(f"{notebook.name}: executed in {time.perf_counter() - start:.1f} s")
    result = _executed[notebook.name]
    if isinstance(result, str):
        pytest.fail(f"{notebook.name} failed under papermill: {result}")
    return result


def test_notebooks_exist() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@by_name
def test_committed_notebook_is_clean(notebook: Path) -> None:
    """Outputs are not committed: they would go stale, bloat diffs and make nbval compare old runs."""
    content = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    nbformat.validate(content)
    assert content.nbformat == 4
    extra = set(content.metadata) - ALLOWED_NOTEBOOK_METADATA
    assert not extra, f"notebook metadata should hold only {ALLOWED_NOTEBOOK_METADATA}, found {extra}"
    assert content.metadata.get("kernelspec", {}).get("name") == KERNEL
    for index, cell in enumerate(content.cells):
        extra = set(cell.metadata) - ALLOWED_CELL_METADATA
        assert not extra, f"cell {index} has metadata {extra}; strip it"
        if cell.cell_type == "code":
            assert not cell.outputs, f"cell {index} has committed outputs; strip them"
            assert cell.execution_count is None, f"cell {index} has an execution count; strip it"


@by_name
def test_one_parameters_cell_first(notebook: Path) -> None:
    code = _code_cells(nbformat.read(notebook, as_version=4))
    tagged = [index for index, cell in enumerate(code) if "parameters" in cell.metadata.get("tags", [])]
    assert tagged == [0], f"the first code cell, and only it, must be tagged 'parameters' (tagged: {tagged})"


def test_small_parameters_exist_in_their_notebooks() -> None:
    """papermill only warns about an unknown parameter; a typo here would silently run the full defaults."""
    for name, parameters in SMALL_PARAMETERS.items():
        path = NOTEBOOK_DIR / name
        assert path.is_file(), f"tests/notebook_params.py names {name}, which is not in notebooks/"
        unknown = set(parameters) - _parameter_names(nbformat.read(path, as_version=4))
        assert not unknown, f"{name} has no parameters named {sorted(unknown)}"


@by_name
def test_linked_images_exist(notebook: Path) -> None:
    """Images in the prose come from `packbert_utils.figures` (`make images`) and are committed."""
    from packbert_utils.figures import FIGURES

    text = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
        path = (NOTEBOOK_DIR / link).resolve()
        assert path.parent == IMAGE_DIR, f"{link}: images belong in images/"
        assert path.name in FIGURES, f"{link} is not drawn by packbert_utils.figures.draw_all"
        assert path.is_file(), f"{link} is missing: run `make images`"


@by_name
def test_notebook_runs(notebook: Path, executed_dir: Path) -> None:
    start = time.perf_counter()
    _execute(notebook, executed_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, (
        f"{notebook.name} took {elapsed:.0f} s with its test parameters; make its entry in "
        "tests/notebook_params.py smaller"
    )


@by_name
def test_checked_outputs_reproduce(notebook: Path, executed_dir: Path) -> None:
    """nbval --nbval-lax re-runs the executed copy and compares the `# NBVAL_CHECK_OUTPUT` cells."""
    executed = _execute(notebook, executed_dir)
    cells = _code_cells(nbformat.read(executed, as_version=4))
    if not any(cell.source.lstrip().startswith(CHECK_MARKER) for cell in cells):
        pytest.skip(f"{notebook.name} marks no cell with {CHECK_MARKER}: nothing to compare")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={CELL_TIMEOUT_S}",
        executed.name,
    ]
    result = subprocess.run(command, cwd=executed.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"nbval failed on {notebook.name} (cells marked {CHECK_MARKER} must print the same on every "
        f"run):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )
