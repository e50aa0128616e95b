"""The benchmark scripts run end to end on tiny settings: they follow the library's API as it changes.

Only that they run and write complete tables is checked here; their figures are for `make bench`.
The scripts run in this process (their `main()` with the command line set), which saves a Python
start and the torch/transformers imports per script; the runs they measure in processes of their own
(inference_speed, training_variants) still spawn those.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _main(script: str, arguments: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Call `script`'s main() as `python script arguments` would, from the benchmarks folder."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # `from _publish import ...`; spawned runs import it too
    monkeypatch.chdir(BENCHMARKS)
    monkeypatch.setattr(sys, "argv", [script, *arguments])
    module = importlib.import_module(Path(script).stem)
    try:
        module.main()
    finally:
        plt.close("all")


def run_benchmark(script: str, *arguments: str, output: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run one benchmark script with `arguments`; return the Markdown table it wrote."""
    _main(script, [*arguments, "--output", str(output)], monkeypatch)
    assert output.with_suffix(".png").stat().st_size > 0
    return output.read_text(encoding="utf-8")


@pytest.mark.slow
def test_attention_speed_times_every_variant(tmp_path, monkeypatch):
    table = run_benchmark(
        "attention_speed.py", "--quick", "--batches", "1", output=tmp_path / "a.md", monkeypatch=monkeypatch
    )
    for variant in ("packed, dense mask", "packed, buckets", "grouped", "dynamic"):
        assert f"| train fp32 | {variant} |" in table
    assert "Buckets against the dense mask" in table


@pytest.mark.slow
def test_training_variants_trains_the_runs_asked_for(tmp_path, monkeypatch):
    table = run_benchmark(
        "training_variants.py",
        *("--max-train-rows", "48", "--max-eval-rows", "32", "--seeds", "0"),
        *("--runs", "packed+full", "grouped+bf16"),
        output=tmp_path / "t.md",
        monkeypatch=monkeypatch,
    )
    rows = [line for line in table.splitlines() if line.startswith(("| packed", "| grouped"))]
    assert [row.split("|")[1].strip() for row in rows] == ["packed+full", "grouped+bf16"]


@pytest.mark.slow
def test_pretraining_speed_reports_the_levers_apart(tmp_path, monkeypatch):
    table = run_benchmark(
        "pretraining_speed.py",
        "--quick",
        "--runs",
        "packed",
        "packed+fullhead",
        output=tmp_path / "p.md",
        monkeypatch=monkeypatch,
    )
    rows = [line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| 128 |")]
    assert rows == ["packed", "packed+fullhead"]


def test_training_variants_refuses_a_misspelt_run(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main("training_variants.py", ["--runs", "packed+fp8"], monkeypatch)
    assert exit_info.value.code != 0
    assert "unknown run 'packed+fp8'" in capsys.readouterr().err


@pytest.mark.slow
def test_inference_speed_times_the_methods_asked_for_and_its_bases(tmp_path, monkeypatch):
    table = run_benchmark(
        "inference_speed.py",
        *("--quick", "--texts", "96", "--methods", "packed_full"),
        output=tmp_path / "i.md",
        monkeypatch=monkeypatch,
    )
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == ["packed", "packed_full", "pipeline"]  # packed and pipeline are the ratios' bases
    # Trimmed and full last layer must predict alike: the trim is exact.
    full = next(line for line in table.splitlines() if line.startswith("| packed_full "))
    assert "| 100.00% |" in full
