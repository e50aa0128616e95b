"""Execute the tutorial notebooks in order with papermill, the way `make run` does.

Each executed notebook is written to the output folder, and every figure it drew is saved beside it
as a PNG (`figures/<notebook>-<cell>-<n>.png`), so the results can be looked at without Jupyter.
Parameters given with `-p name value` go to every notebook (papermill ignores the ones a notebook
does not declare, with a warning).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parent.parent


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
    args = parser.parse_args()
    notebooks = (
        [Path(n) for n in args.notebooks] if args.notebooks else sorted((ROOT / "notebooks").glob("*.ipynb"))
    )
    parameters = {name: _literal(value) for name, value in args.parameter}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    total_start = time.perf_counter()
    for position, notebook in enumerate(notebooks, start=1):
        target = args.output_dir / notebook.name
        print(f"[{position}/{len(notebooks)}] {notebook.name} ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(target),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=True,  # a cell-by-cell bar in the terminal, so a long notebook shows life
            )
        except papermill.PapermillExecutionError as error:
            print(f"    failed: {error.ename}: {error.evalue}\n    see {target}", file=sys.stderr)
            return 1
        figures = save_figures(target, args.output_dir / "figures")
        print(f"    done in {time.perf_counter() - start:.0f} s, {len(figures)} figures", flush=True)
    minutes = (time.perf_counter() - total_start) / 60
    print(
        f"\nAll {len(notebooks)} notebooks ran in {minutes:.1f} min. Executed notebooks: {args.output_dir}/, "
        f"figures: {args.output_dir / 'figures'}/"
    )
    return 0


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
