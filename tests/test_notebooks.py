"""The tutorial notebooks: committed clean, and they run from top to bottom.

Every `notebooks/*.ipynb` is picked up, so a new notebook is tested as soon as it exists.

1. The committed file is valid nbformat 4, stripped of outputs and execution counts, and has exactly
   one `parameters`-tagged cell, its first code cell (papermill injects values after it).
2. papermill executes it with the small parameters of `tests/notebook_params.py` (kernel `python3`,
   working directory `notebooks/`); any exception fails the test.
3. nbval re-executes papermill's copy in lax mode and compares the cells marked
   `# NBVAL_CHECK_OUTPUT` with papermill's outputs, so those cells must print the same on every run.
   The copy carries the injected small parameters, and ends at its last marked cell: what comes after
   cannot change a marked cell's output (cells run top to bottom, and papermill has already run it all),
   so the second run stops there.
4. The executed copy is quiet (no progress-bar widgets, ANSI escapes, load reports or walls of
   text), and every notebook is a workshop notebook: it asserts its key claims in code and ends
   with at least two exercises whose solutions are folded away (and executed here).
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
ALLOWED_CELL_METADATA = {"tags", "jupyter"}  # "jupyter": {"source_hidden": true} folds solution code
MAX_OUTPUT_LINES = 40  # one output longer than this is a wall of text (a raw tensor, a log), not a summary
MIN_EXERCISES = 2
EXERCISE_HEADING = re.compile(r"^#{2,4} Exercise (\d+): \S", re.MULTILINE)
CODING_HEADING = re.compile(r"^#{2,4} Coding exercise( [A-Z])?: \S", re.MULTILINE)
SOLUTION_SUMMARY = "<details><summary>Solution</summary>"
# What a noisy notebook shows: a progress bar (widget, or tqdm text), terminal colours, a model load report.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOISE = {
    "an ANSI escape sequence": re.compile(r"\x1b\["),
    "a tqdm progress bar": re.compile(r"\d+%\|[^|]*\|\s*\d+/\d+|it/s\]"),
    "a model load report": re.compile(
        r"Some weights of|newly initialized|were not used when initializing|LOAD REPORT", re.IGNORECASE
    ),
}

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
                parameters=small_parameters(notebook.name, directory),
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


def test_small_parameters_write_nothing_into_the_repository(tmp_path: Path) -> None:
    """Paths the tests pass go under the run's temporary folder: a model left in outputs/ by one run
    would be picked up silently by a later partial run (notebook 5 alone)."""
    for name in SMALL_PARAMETERS:
        for key, value in small_parameters(name, tmp_path).items():
            if isinstance(value, str) and ("/" in value or key.endswith("_dir")):
                assert Path(value).is_relative_to(tmp_path), f"{name}: {key}={value!r} is outside {tmp_path}"


def test_fast_parameters_exist_in_their_notebooks() -> None:
    """The short-session settings of `scripts/run_notebooks.py --fast` name real parameters too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, parameters in module.FAST_PARAMETERS.items():
        path = NOTEBOOK_DIR / name
        assert path.is_file(), f"FAST_PARAMETERS names {name}, which is not in notebooks/"
        unknown = set(parameters) - _parameter_names(nbformat.read(path, as_version=4))
        assert not unknown, f"{name} has no parameters named {sorted(unknown)}"


@by_name
def test_linked_images_exist(notebook: Path) -> None:
    """Images in the prose come from `packbert_utils.viz.images` (`make images`) and are committed."""
    from packbert_utils.viz.images import FIGURES

    text = "\n".join(cell.source for cell in nbformat.read(notebook, as_version=4).cells)
    for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
        path = (NOTEBOOK_DIR / link).resolve()
        assert path.parent == IMAGE_DIR, f"{link}: images belong in images/"
        assert path.name in FIGURES, f"{link} is not drawn by packbert_utils.viz.images.draw_all"
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
    content = nbformat.read(executed, as_version=4)
    marked = [i for i, c in enumerate(content.cells) if c.cell_type == "code" and _is_marked(c)]
    if not marked:
        pytest.skip(f"{notebook.name} marks no cell with {CHECK_MARKER}: nothing to compare")
    content.cells = content.cells[: marked[-1] + 1]
    checked = executed.with_name(f"checked_{executed.name}")
    nbformat.write(content, checked)
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
        checked.name,
    ]
    result = subprocess.run(command, cwd=executed.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"nbval failed on {notebook.name} (cells marked {CHECK_MARKER} must print the same on every "
        f"run):\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    )


def _is_marked(cell: nbformat.NotebookNode) -> bool:
    return cell.source.lstrip().startswith(CHECK_MARKER)


def _output_texts(cell: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(kind, text) of every output of a cell: streams, plain text of results, and error tracebacks."""
    texts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            texts.append((f"{output.name} stream", output.text))
        elif output.output_type == "error":
            texts.append(("error", "\n".join(output.traceback)))
        else:
            data = output.get("data", {})
            if "text/plain" in data and "text/html" not in data and "image/png" not in data:
                texts.append(("text result", data["text/plain"]))
    return texts


@by_name
def test_executed_output_is_quiet(notebook: Path, executed_dir: Path) -> None:
    """Progress-bar widgets render frozen at 0% on GitHub and nbviewer; load reports and long logs bury
    the results. Executed notebooks show one-line summaries instead."""
    executed = nbformat.read(_execute(notebook, executed_dir), as_version=4)
    problems = []
    for index, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                shown = output["data"].get("text/plain", "")
                problems.append(f"cell {index}: a widget output (a progress bar?): {shown!r}")
        for kind, text in _output_texts(cell):
            for what, pattern in NOISE.items():
                if pattern.search(text):
                    problems.append(f"cell {index}: {what} in its {kind}: {text[:120]!r}")
            lines = text.count("\n") + 1
            if lines > MAX_OUTPUT_LINES:
                problems.append(f"cell {index}: its {kind} has {lines} lines (at most {MAX_OUTPUT_LINES})")
    assert not problems, f"{notebook.name} is noisy:\n" + "\n".join(problems)


def _exercises(notebook: nbformat.NotebookNode) -> list[tuple[str, list[nbformat.NotebookNode]]]:
    """Each exercise heading with the cells up to the next heading (or the end)."""
    exercises: list[tuple[str, list[nbformat.NotebookNode]]] = []
    for cell in notebook.cells:
        heading = None
        if cell.cell_type == "markdown":
            heading = EXERCISE_HEADING.search(cell.source) or CODING_HEADING.search(cell.source)
        if heading:
            exercises.append((heading.group(0).strip("# "), [cell]))
        elif exercises and not (cell.cell_type == "markdown" and cell.source.lstrip().startswith("#")):
            exercises[-1][1].append(cell)
        elif exercises:
            exercises.append(("", []))  # another section ends the exercise
    return [(title, cells) for title, cells in exercises if title]


def _is_hidden_solution(cell: nbformat.NotebookNode) -> bool:
    """Solution code: folded (metadata jupyter.source_hidden) and tagged "solution" or headed "# Solution"."""
    folded = cell.metadata.get("jupyter", {}).get("source_hidden") is True
    named = "solution" in cell.metadata.get("tags", []) or cell.source.lstrip().startswith("# Solution")
    return folded and named


def _is_coding_exercise(cells: list[nbformat.NotebookNode]) -> bool:
    """A learner's cell that checks their code, and a folded solution that checks itself strictly."""
    code = [c for c in cells if c.cell_type == "code"]
    stub = any("check_exercise(" in c.source and not _is_hidden_solution(c) for c in code)
    solved = any(
        _is_hidden_solution(c) and "run_solutions" in c.source and "strict=" in c.source for c in code
    )
    return stub and solved


@by_name
def test_exercises_with_folded_solutions(notebook: Path) -> None:
    """At least two exercise sections ("Exercise N: ..." numbered 1.., or "Coding exercise [A]: ..."),
    each with its solution folded, and at least one where the learner writes code: a visible cell with
    their function and `check_exercise`, then folded solution code run when `run_solutions` is True (CI
    and make run), which checks itself strictly. Other exercises fold their answer in a <details> block,
    or in hidden solution code."""
    content = nbformat.read(notebook, as_version=4)
    exercises = _exercises(content)
    assert len(exercises) >= MIN_EXERCISES, (
        f"{notebook.name} has {len(exercises)} 'Exercise N: ...' headings; it needs at least {MIN_EXERCISES}"
    )
    numbered = [EXERCISE_HEADING.search(cells[0].source) for _, cells in exercises]
    numbers = [int(match.group(1)) for match in numbered if match]
    assert numbers == list(range(1, len(numbers) + 1)), f"exercises are numbered {numbers}"
    assert "run_solutions" in _parameter_names(content), f"{notebook.name}: no run_solutions parameter"
    coding = [title for title, cells in exercises if _is_coding_exercise(cells)]
    assert coding, f"{notebook.name}: no exercise where the learner writes code checked by check_exercise"
    for title, cells in exercises:
        folded = [c for c in cells if c.cell_type == "markdown" and SOLUTION_SUMMARY in c.source]
        hidden = [c for c in cells if c.cell_type == "code" and _is_hidden_solution(c)]
        assert folded or hidden, f"{notebook.name}, {title}: no folded solution (<details> or hidden code)"
        assert all("</details>" in c.source for c in folded), f"{notebook.name}, {title}: unclosed <details>"
        for cell in cells:
            if cell.cell_type == "code" and not _is_hidden_solution(cell):
                assert "check_exercise(" in cell.source, (
                    f"{notebook.name}, {title}: visible code in an exercise must be the learner's, with "
                    "check_exercise; solution code is folded"
                )
    tagged = [c for c in _code_cells(content) if _is_hidden_solution(c)]
    in_exercises = sum(
        1 for _, cells in exercises for c in cells if c.cell_type == "code" and _is_hidden_solution(c)
    )
    assert len(tagged) == in_exercises, f"{notebook.name}: solution code outside the exercises"


@by_name
def test_key_claims_are_asserted(notebook: Path) -> None:
    """Prose claims such as "packed equals alone" are checked by an assert in the notebook, so that a
    run contradicting them fails instead of printing a number next to a sentence it refutes."""
    code = "\n".join(cell.source for cell in _code_cells(nbformat.read(notebook, as_version=4)))
    asserts = [node for node in ast.walk(ast.parse(_without_magics(code))) if isinstance(node, ast.Assert)]
    assert asserts, f"{notebook.name} asserts nothing; check its key invariants in code"


def _without_magics(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def test_first_notebook_starts_with_a_setup_check() -> None:
    """Notebook 1 checks the set-up before anything else: versions, the device, and whether the hub is
    reachable, one line each."""
    code = _code_cells(nbformat.read(NOTEBOOKS[0], as_version=4))
    assert NOTEBOOKS[0].name.startswith("01"), f"expected notebook 01 first, got {NOTEBOOKS[0].name}"
    check = code[1].source  # the first cell after the parameters
    for needed in ("torch.__version__", "transformers.__version__", "datasets.__version__", "hub_reachable"):
        assert needed in check, f"the set-up check (the first cell after the parameters) lacks {needed}"
    assert "cuda" in check, "the set-up check should report the device"


def test_inference_notebook_refuses_a_missing_model(tmp_path: Path) -> None:
    """Without notebook 4's model and without allow_untrained_fallback, notebook 5 stops with a clear
    error instead of quietly classifying with an untrained head."""
    import papermill

    notebook = NOTEBOOK_DIR / "05_fast_inference.ipynb"
    parameters = small_parameters(notebook.name, tmp_path) | {
        "model_dir": str(tmp_path / "missing"),
        "allow_untrained_fallback": False,
    }
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(
            str(notebook),
            str(tmp_path / notebook.name),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(NOTEBOOK_DIR),
            progress_bar=False,
            execution_timeout=CELL_TIMEOUT_S,
        )
    assert raised.value.ename == "FileNotFoundError"
    assert "Run notebook 4 first" in raised.value.evalue
