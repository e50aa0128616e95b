"""Strip outputs and execution counts from notebooks, so that they are committed clean (CI executes them).

Usage: `python scripts/strip_notebooks.py notebooks/*.ipynb`; exits 1 if it changed a file (as
pre-commit expects), 0 if every notebook was already clean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Remove outputs, execution counts and run metadata from one notebook; True if it changed."""
    notebook = nbformat.read(path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs, cell.execution_count = [], None
            changed = True
        for key in ("execution", "papermill"):
            if cell.metadata.pop(key, None) is not None:
                changed = True
    if notebook.metadata.pop("papermill", None) is not None:
        changed = True
    if changed:
        nbformat.write(notebook, path)
    return changed


def main(paths: list[str]) -> int:
    changed = [path for path in paths if strip(Path(path))]
    for path in changed:
        print(f"stripped {path}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
