"""`make run` (scripts/run_notebooks.py) is quiet and keeps its times: run as a user runs it, on a one-cell
notebook, it prints no kernel transport warning and writes every notebook's time to `timings.md`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_run_is_quiet_and_writes_its_timings(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "01_tiny.ipynb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = ROOT / "scripts" / "run_notebooks.py"
    done = subprocess.run(
        [sys.executable, script, "--output-dir", tmp_path / "out", "--notebooks", tmp_path / "01_tiny.ipynb"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(tmp_path / "out" / "01_tiny.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"  # the kernel ran, over the encrypted sockets
    # ipykernel logs this at kernel start unless the kernel manager encrypts its sockets (KERNEL_CONFIG)
    assert "without encryption" not in done.stderr + done.stdout
    timings = (tmp_path / "out" / "timings.md").read_text()
    assert "load average" in timings and "OMP_NUM_THREADS=1" in timings
    rows = [line for line in timings.splitlines() if line.startswith("| 01_tiny.ipynb |")]
    assert len(rows) == 1 and float(rows[0].split("|")[2]) >= 0
    assert done.stdout.split("s  01_tiny.ipynb")[0].split()[-1] == rows[0].split("|")[2].strip()  # as printed
