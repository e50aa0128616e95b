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


def test_pretraining_speed_corpus_at_wikipedia_lengths_has_the_rows_asked_for(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("pretraining_speed")
    assert module.corpus_splits("sotu", 16, 4) == "sotu"  # pretrain loads the task by name
    splits = module.corpus_splits("wikipedia-lengths", 16, 4)
    assert splits.task.problem_type == "masked_lm"
    assert len(splits["train"]) >= 16 and len(splits["validation"]) >= 4


def test_pretraining_speed_table_reports_a_run_that_died(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("pretraining_speed")
    done = {
        "run": "packed", "max_seq_length": 512, "seed": 0, "tokens_per_s": 100.0, "masked_tokens_per_s": 15.0,
        "efficiency": 0.98, "peak_rss_gb": 1.0, "eval_mlm_loss": 7.0,
    }  # fmt: skip
    rows = [
        done,
        {**done, "seed": 1, "tokens_per_s": 300.0},
        {"run": "dynamic", "max_seq_length": 512, "seed": 0, "died": True},
        {**done, "run": "dynamic", "seed": 1, "tokens_per_s": 50.0},
        {"run": "grouped", "max_seq_length": 512, "seed": 0, "died": True},
    ]
    settings = {
        "corpus": "sotu", "max_train_rows": 8, "sequences_per_step": 4, "max_steps": 2, "num_train_epochs": 1,
        "max_seq_per_pack": 3,
    }  # fmt: skip
    table = module.table(rows, ["packed", "dynamic", "grouped"], [512], settings)
    assert "| 512 | packed | 200 |" in table  # the median of the two seeds
    assert "| 512 | dynamic | 50 |" in table  # the seed that died is left out
    assert "| 512 | grouped | died |" in table
    assert table.endswith("left out: dynamic at 512 seed 0, grouped at 512 seed 0.")
    at_wikipedia_lengths = module.table(rows, ["packed"], [512], {**settings, "corpus": "wikipedia-lengths"})
    assert "8 training documents (SOTU text cut to the paper's Wikipedia lengths)" in at_wikipedia_lengths


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
