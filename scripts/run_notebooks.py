"""Execute the tutorial notebooks in order with papermill, the way `make run` does.

Each executed notebook is written to the output folder, and every figure it drew is saved beside it
as a PNG (`figures/<notebook>-<cell>-<n>.png`), so the results can be looked at without Jupyter.
Parameters given with `-p name value` go to every notebook (papermill ignores the ones a notebook
does not declare, with a warning). `--fast` runs the shorter settings of `FAST_PARAMETERS`, for a
workshop short of time (WORKSHOP.md); `-p` values win over them. At the end the time of every
notebook is printed with the machine's load, the figures WORKSHOP.md quotes, and written to
`timings.md` in the output folder, so they stay in one place beside the executed notebooks.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent

FAST_PARAMETERS: dict[str, dict[str, object]] = {
    "03_attention_mask.ipynb": {"timing_repeats": 1},
    "04_training.ipynb": {
        "variants": ["packed", "max_length", "grouped"],
        "max_train_rows": 400,
        "max_eval_rows": 200,
        "compare_speed_levers": False,
    },
    "05_fast_inference.ipynb": {"num_texts": 300, "timing_repeats": 1},
    "08_question_answering.ipynb": {"histogram_questions": 1000, "max_steps": 15, "eval_questions": 100},
    "07_pretraining.ipynb": {"histogram_split": "validation", "max_steps": 6},
}
"""Shorter settings for a short session: every comparison stays, on less data and fewer repeats."""


SOLUTIONS = {"run_solutions": True}
"""Every notebook runs the folded solutions of its exercises, which check themselves strictly: a
learner's copy (the default, False) shows "Not yet" at each exercise instead."""

KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})
"""The kernel manager encrypts its sockets to the kernel (CurveZMQ keys it provisions itself).

Without this, ipykernel 7 logs "Kernel is running over TCP without encryption" at every kernel start,
once per notebook: papermill talks to its kernel over local TCP sockets, in plain text by default.
"auto" is jupyter_client's setting for this: it encrypts when the kernelspec declares CurveZMQ support
(ipykernel's own `python3` spec does) and otherwise runs as before, and then the warning is true."""


def _solutions(notebook: Path) -> dict[str, object]:
    """`SOLUTIONS` for a notebook that declares them in its parameters cell, else nothing (papermill would
    warn about an unknown parameter and add a cell to set it)."""
    declared = papermill.inspect_notebook(str(notebook))
    return {name: value for name, value in SOLUTIONS.items() if name in declared}


def save_figures(notebook_path: Path, figures_dir: Path) -> list[Path]:
    """Write every PNG output of an executed notebook to `figures_dir`."""
    notebook = nbformat.read(notebook_path, as_version=4)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, cell in enumerate(notebook.cells):
        images = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        for number, image in enumerate(images):
            path = figures_dir / f"{notebook_path.stem}-cell{index:02d}-{number}.png"
            path.write_bytes(base64.b64decode(image))
            written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "outputs")
    parser.add_argument("--notebooks", nargs="*", default=None, help="default: notebooks/*.ipynb in order")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--fast", action="store_true", help="the shorter settings of FAST_PARAMETERS")
    args = parser.parse_args()
    notebooks = (
        [Path(n) for n in args.notebooks] if args.notebooks else sorted((ROOT / "notebooks").glob("*.ipynb"))
    )
    parameters = {name: _literal(value) for name, value in args.parameter}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    total_start = time.perf_counter()
    load_before = _load()
    times = {}
    for position, notebook in enumerate(notebooks, start=1):
        target = args.output_dir / notebook.name
        preset = FAST_PARAMETERS.get(notebook.name, {}) if args.fast else {}
        print(f"[{position}/{len(notebooks)}] {notebook.name} {preset or ''}...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(target),
                parameters=_solutions(notebook) | preset | parameters,
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=True,  # a cell-by-cell bar in the terminal, so a long notebook shows life
                config=KERNEL_CONFIG if _curve_available() else Config(),
            )
        except papermill.PapermillExecutionError as error:
            print(f"    failed: {error.ename}: {error.evalue}\n    see {target}", file=sys.stderr)
            _write_timings(args.output_dir, times, load_before, fast=args.fast, failed=notebook.name)
            return 1
        figures = save_figures(target, args.output_dir / "figures")
        times[notebook.name] = time.perf_counter() - start
        print(f"    done in {times[notebook.name]:.0f} s, {len(figures)} figures", flush=True)
    minutes = (time.perf_counter() - total_start) / 60
    print(
        f"\nAll {len(notebooks)} notebooks ran in {minutes:.1f} min. Executed notebooks: {args.output_dir}/, "
        f"figures: {args.output_dir / 'figures'}/"
    )
    print(f"\n{_machine()}; load average {load_before} before, {_load()} after")
    for name, seconds in times.items():
        print(f"{seconds:7.0f} s  {name}")
    path = _write_timings(args.output_dir, times, load_before, fast=args.fast)
    print(f"(also in {path})")
    return 0


def timings_markdown(
    times: dict[str, float], machine: str, loads: tuple[str, str], fast: bool, failed: str | None = None
) -> str:
    """The run's per-notebook times as a Markdown table, with when and on what they were measured.

    >>> print(timings_markdown({"01_a.ipynb": 12.3}, "2 CPUs", ("0.5", "1.9"), fast=False).splitlines()[-2])
    | 01_a.ipynb | 12 |
    """
    settings = "`--fast` settings" if fast else "default settings"
    lines = [
        "# Notebook run times",
        "",
        f"`scripts/run_notebooks.py`, {settings}, {datetime.date.today():%d %B %Y}; {machine}; "
        f"load average {loads[0]} before, {loads[1]} after.",
        "",
        "| notebook | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.0f} |" for name, seconds in times.items()),
        f"| all | {sum(times.values()):.0f} |",
    ]
    if failed:
        lines += ["", f"Stopped at {failed}, which failed."]
    return "\n".join(lines) + "\n"


def _write_timings(
    output_dir: Path, times: dict[str, float], load_before: str, fast: bool, failed: str | None = None
) -> Path:
    path = output_dir / "timings.md"
    path.write_text(timings_markdown(times, _machine(), (load_before, _load()), fast, failed))
    return path


def _curve_available() -> bool:
    """Whether pyzmq can encrypt (CurveZMQ); without it jupyter_client refuses transport_encryption."""
    import zmq

    return bool(zmq.has("curve"))


def _load() -> str:
    """The 1-minute load average: how busy the machine was, next to the times measured on it."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def _machine() -> str:
    return f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={_threads()}"


def _threads() -> str:
    return os.environ.get("OMP_NUM_THREADS", "unset")


def _literal(value: str):
    """Read `-p` values as numbers, booleans or None where they look like one, else as text."""
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(value, value)


if __name__ == "__main__":
    sys.exit(main())
