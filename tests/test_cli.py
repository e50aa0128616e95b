"""The command line (`python -m packbert_utils stats|train|images`) run as a user runs it, and the packing
report it prints.

Every bad argument or file must end in one line on stderr, no traceback and a non-zero exit; good runs
print their result and exit 0. Each process costs seconds of imports (torch, scipy), so one fixture starts
the process runs together, a few at a time; further bad arguments go through `main()` in this process,
the same code path. `images` also shows that `figures.draw_all` writes the PNGs it returns (the CLI
prints their names).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from packbert_utils import __main__ as cli
from packbert_utils import load_tokenizer, task_metrics, tokenize_task
from packbert_utils.packing.plan import (
    ALGORITHMS,
    NNLSHP_MAX_SEQ_PER_PACK,
    pack_histogram,
    sequence_length_histogram,
)
from packbert_utils.packing.report import packing_report, plan_table
from packbert_utils.training.config import TrainingConfig
from packbert_utils.training.trainer import _load_splits
from packbert_utils.viz.images import FIGURES

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_TRAINING = (
    "train --max-steps 1 --max-seq-length 32 --max-seq-per-pack 4 --sequences-per-step 8 "
    "--max-train-rows 16 --max-eval-rows 4"
)


def _write_files(folder: Path) -> dict[str, Path]:
    words = ["good", "bad", "fine", "dull", "moving", "flat", "sharp", "slow"]
    rows = [f"a {words[i % 8]} film number {i},{i % 2}" for i in range(40)]
    files = {
        "small": folder / "reviews.csv",
        "empty": folder / "empty.csv",
        "header_only": folder / "header.csv",
    }
    files["small"].write_text("text,label\n" + "\n".join(rows) + "\n")
    files["documents"] = folder / "notes.txt"  # 30 documents, one per blank-line separated block
    files["documents"].write_text(
        "\n\n".join(f"Note {i}. The {words[i % 8]} film ran {i} minutes. We left early." for i in range(30))
    )
    files["empty"].write_text("")
    files["header_only"].write_text("text,label\n")
    return files


def _bad_cases(files: dict[str, Path], tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, text the one-line error must contain). The first six run as processes."""
    small = str(files["small"])
    return {
        "unknown task": (["stats", "--task", "sst3"], "Unknown task 'sst3'"),
        "missing file": (["stats", "--task", str(tmp / "nope.csv")], "does not exist"),
        "empty csv": (["stats", "--task", str(files["empty"])], "empty.csv: could not be read"),
        "max-seq-length 0": (["stats", "--task", small, "--max-seq-length", "0"], "--max-seq-length"),
        "unknown column": (["stats", "--task", small, "--text-columns", "review"], "['review'] not found"),
        "hub task offline": (["stats", "--task", "sst2"], "Offline tasks"),
        # the same code path, in this process (each process costs seconds of imports)
        "header-only csv": (["stats", "--task", str(files["header_only"])], "header.csv"),
        "max-seq-length too long": (
            ["stats", "--task", small, "--max-seq-length", "100000"],
            "100000 exceeds",
        ),
        "unknown split": (["stats", "--task", small, "--split", "dev"], "--split 'dev'"),
        "hub checkpoint offline": (
            ["train", "--task", small, "--checkpoint", "bert-base-uncased"],
            "bert-base",
        ),
        "negative epochs": (["train", "--task", small, "--epochs", "-1"], "num_train_epochs"),
        "output dir is a file": (["train", "--task", small, "--output-dir", small], "--output-dir"),
        "images into a file": (["images", "--output-dir", small], "reviews.csv"),
    }


SUBPROCESS_BAD = [
    "unknown task",
    "missing file",
    "empty csv",
    "max-seq-length 0",
    "unknown column",
    "hub task offline",
]
IN_PROCESS_BAD = ["header-only csv", "max-seq-length too long", "unknown split", "hub checkpoint offline"]
IN_PROCESS_BAD += ["negative epochs", "output dir is a file", "images into a file"]


def _good_cases(files: dict[str, Path], tmp: Path) -> dict[str, list[str]]:
    small = str(files["small"])
    return {
        "stats": ["stats", "--task", small, "--max-seq-length", "32", "--max-seq-per-pack", "4"],
        "images": ["images", "--output-dir", str(tmp / "images")],
        "train": [*TINY_TRAINING.split(), "--task", small, "--bf16", "--output-dir", str(tmp / "model")],
        "pretrain": [
            "pretrain",
            *TINY_TRAINING.split()[1:],
            "--corpus",
            str(files["documents"]),
            "--output-dir",
            str(tmp / "mlm"),
        ],
    }


def _run(arguments: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # "Whatever the environment": hub names must fail fast without the user setting HF_HUB_OFFLINE.
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("PACKBERT_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "packbert_utils", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli")
    files = _write_files(tmp)
    return {"tmp": tmp, "bad": _bad_cases(files, tmp), "good": _good_cases(files, tmp)}


@pytest.fixture(scope="module")
def runs(setup: dict[str, Any]) -> dict[str, subprocess.CompletedProcess]:
    """name -> finished `python -m packbert_utils ...` process, for the good runs and the first bad ones."""
    arguments = {**{name: setup["bad"][name][0] for name in SUBPROCESS_BAD}, **setup["good"]}
    with ThreadPoolExecutor(max_workers=3) as pool:  # processes wait on imports more than on the CPU
        return dict(zip(arguments, pool.map(_run, arguments.values()), strict=True))


def _assert_one_error_line(stderr: str, code: int, expected_code: int, text: str) -> None:
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert code == expected_code, (code, stderr[-2000:])
    assert len(error_lines) == 1, stderr[-2000:]
    assert stderr.rstrip().splitlines()[-1] == error_lines[0]  # the error comes last, in one line
    assert text in error_lines[0], error_lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", SUBPROCESS_BAD)
def test_a_bad_argument_or_file_is_one_line_on_stderr(runs, setup, case):
    result = runs[case]
    _assert_one_error_line(result.stderr, result.returncode, 2, setup["bad"][case][1])


@pytest.mark.parametrize("case", IN_PROCESS_BAD)
def test_more_bad_arguments_in_process(setup, case, capsys, monkeypatch):
    monkeypatch.delenv("PACKBERT_TRACEBACK", raising=False)
    arguments, text = setup["bad"][case]
    code = cli.main(arguments)
    _assert_one_error_line(capsys.readouterr().err, code, 2, text)


@pytest.mark.slow
def test_stats_prints_one_report_row_per_planner(runs):
    result = runs["stats"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "into rows of 32 tokens, at most 4 per pack" in out
    header = next(line for line in out.splitlines() if "num_packs" in line)
    assert {"num_sequences", "num_packs", "lower_bound", "efficiency", "packing_factor"} <= set(
        header.split()
    )
    rows = {words[0]: words for words in map(str.split, out.splitlines()) if words and words[0] in ALGORITHMS}
    assert set(rows) == set(ALGORITHMS)
    # nnlshp runs with at most 3 per pack; the others with the 4 asked for.
    column = header.split().index("max_seq_per_pack") + 1  # +1: the index column has no header
    assert [rows[a][column] for a in ALGORITHMS] == ["4", "4", str(NNLSHP_MAX_SEQ_PER_PACK)]


@pytest.mark.slow
def test_images_writes_every_figure_draw_all_returns(runs, setup):
    result = runs["images"]
    assert result.returncode == 0, result.stderr[-2000:]
    folder = setup["tmp"] / "images"
    # The CLI prints the names of the paths draw_all returned: every one must be a PNG written there.
    last = result.stdout.strip().splitlines()[-1]  # "4 figures written to DIR/: a.png, b.png, ..."
    count, listed = last.split(" figures written to ")[0], last.split(": ")[-1].split(", ")
    assert int(count) == len(FIGURES) and listed == list(FIGURES)
    assert sorted(path.name for path in folder.iterdir()) == sorted(FIGURES)
    for name in listed:
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC and (folder / name).stat().st_size > 10_000, name


@pytest.mark.slow
def test_train_prints_its_json_summary(runs, setup):
    result = runs["train"]
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    start, end = lines.index("{"), lines.index("}")  # json.dumps(indent=2) of a flat dict
    summary = json.loads("\n".join(lines[start : end + 1]))
    assert summary["variant"] == "packed" and summary["optimizer_steps"] == 1
    assert 0 < summary["train_sequences"] <= 16
    assert 0.0 <= summary["eval_accuracy"] <= 1.0
    assert 0 < summary["efficiency"] <= 1.0
    # The figures are those of the run: tokens and efficiency agree, and the saved model, reloaded as a
    # plain transformers model and run on each evaluation row alone, gives the printed metrics.
    assert summary["efficiency"] == pytest.approx(summary["train_tokens"] / summary["computed_tokens"])
    assert result.stdout.rstrip().splitlines()[-1] == f"Model and tokenizer saved to {setup['tmp'] / 'model'}"
    raw = _load_splits(
        str(setup["tmp"] / "reviews.csv"),
        None,
        None,
        "label",
        TrainingConfig(max_train_rows=16, max_eval_rows=4),
    )
    rows = tokenize_task(raw, load_tokenizer(), 32)["validation"]
    model = AutoModelForSequenceClassification.from_pretrained(setup["tmp"] / "model").eval()
    with torch.no_grad():
        names = ("input_ids", "attention_mask")
        logits = np.concatenate([model(**{k: torch.tensor([row[k]]) for k in names}).logits for row in rows])
    metrics = task_metrics(raw.task, logits, np.asarray(rows["label"]))
    assert {f"eval_{name}": value for name, value in metrics.items()} == pytest.approx(
        {key: value for key, value in summary.items() if key.startswith("eval_")}, abs=1e-6
    )


def test_pretrain_on_a_text_file_saves_a_plain_masked_lm(runs, setup):
    """`pretrain --corpus notes.txt` trains packed MLM on the file's documents and saves a checkpoint that
    transformers' own masked-LM class loads, with the run's summary beside it."""
    from transformers import AutoModelForMaskedLM

    result = runs["pretrain"]
    assert result.returncode == 0, result.stderr[-3000:]
    folder = setup["tmp"] / "mlm"
    summary = json.loads((folder / "training_summary.json").read_text())
    assert summary["variant"] == "packed" and summary["optimizer_steps"] == 1
    assert summary["masked_tokens"] > 0 and summary["eval_mlm_loss"] > 0
    plain = AutoModelForMaskedLM.from_pretrained(folder)
    assert type(plain).__name__ == "BertForMaskedLM"


@pytest.mark.slow
def test_train_with_bf16_saves_a_model_that_reloads(runs, setup):
    """--output-dir holds a complete checkpoint: the plain classifier with its labels, the tokenizer, and
    the printed summary; a packed predictor and the plain transformers class give the same logits."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from packbert_utils import PackedTextClassifier, load_tokenizer

    result = runs["train"]
    assert result.returncode == 0, result.stderr[-3000:]
    folder = setup["tmp"] / "model"
    assert f"Model and tokenizer saved to {folder}" in result.stdout
    lines = result.stdout.splitlines()
    printed = json.loads("\n".join(lines[lines.index("{") : lines.index("}") + 1]))
    assert json.loads((folder / "training_summary.json").read_text()) == printed
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert type(plain).__name__ == "BertForSequenceClassification"
    assert plain.config.num_labels == 2 and plain.dtype == torch.float32  # bf16 autocast, fp32 weights kept
    texts = ["a good film number 1", "a dull film", "sharp"]
    tokenizer = load_tokenizer(str(folder))
    with torch.no_grad():
        expected = plain(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    packed = PackedTextClassifier(str(folder), max_seq_length=32).predict(texts, progress=False)
    np.testing.assert_allclose(packed, expected, atol=1e-4)


def test_train_passes_every_setting_to_fine_tune(monkeypatch, tmp_path, capsys):
    """Each `train` option reaches fine_tune's keyword of the same meaning, and every fine_tune setting
    has an option (except the Python-only ones), so the command line cannot fall behind the function."""
    import dataclasses
    import inspect

    from packbert_utils.training import trainer
    from packbert_utils.training.config import TrainingConfig

    received: dict[str, Any] = {}
    # fine_tune's own arguments and every field of its TrainingConfig
    settings = set(inspect.signature(trainer.fine_tune).parameters) - {"config", "settings"}
    settings |= {field.name for field in dataclasses.fields(TrainingConfig)}

    class Saved:
        def save_pretrained(self, folder):
            Path(folder, "config.json").write_text("{}")

    class Result:
        model = Saved()

        def summary(self):
            return {"variant": "packed"}

    def fake_fine_tune(*args, **kwargs):
        received.update(zip(("task", "checkpoint", "variant"), args, strict=True), **kwargs)
        return Result()

    monkeypatch.setattr(trainer, "fine_tune", fake_fine_tune)
    monkeypatch.setattr("packbert_utils.data.tokenizing.load_tokenizer", lambda name: Saved())
    options = (
        "--task my.csv --checkpoint ckpt --variant grouped --max-seq-length 64 --max-seq-per-pack 6 "
        "--sequences-per-step 48 --gradient-accumulation-steps 2 --learning-rate 3e-4 "
        "--lr-scheduler-type cosine --warmup-ratio 0.2 --weight-decay 0.05 --epochs 3 --max-steps 7 --seed 5 "
        "--max-train-rows 100 "
        "--max-eval-rows 20 --eval-split test --algorithm spfhp --attn-implementation eager --bf16 "
        "--logging-steps 3 --full-last-layer --text-columns a b --label-column y"
    )
    code = cli.main(["train", *options.split(), "--output-dir", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert received == {
        "task": "my.csv",
        "checkpoint": "ckpt",
        "variant": "grouped",
        "max_seq_length": 64,
        "max_seq_per_pack": 6,
        "sequences_per_step": 48,
        "gradient_accumulation_steps": 2,
        "learning_rate": 3e-4,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.2,
        "weight_decay": 0.05,
        "num_train_epochs": 3.0,
        "max_steps": 7,
        "seed": 5,
        "max_train_rows": 100,
        "max_eval_rows": 20,
        "eval_split": "test",
        "algorithm": "spfhp",
        "attn_implementation": "eager",
        "bf16": True,
        "logging_steps": 3,
        "trim_last_layer": False,
        "text_columns": ["a", "b"],
        "label_column": "y",
    }
    # data objects, a notebook's progress bar, the Trainer's scratch folder
    python_only = {"dataset", "progress", "output_dir"}
    assert settings - python_only == set(received)
    assert (tmp_path / "out" / "training_summary.json").is_file()
    # without --bf16 the default is fp32, and --save-dir still names the folder
    received.clear()
    assert cli.main(["train", "--save-dir", str(tmp_path / "old")]) == 0
    assert received["bf16"] is False and (tmp_path / "old" / "config.json").is_file()


# ---- in-process: argparse, unexpected errors, interruptions ---------------------------------------------


@pytest.mark.parametrize(
    "arguments", [[], ["stats", "--max-seq-length", "abc"], ["train", "--variant", "best"], ["nope"]]
)
def test_argparse_errors_exit_2_with_a_usage_line(arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("usage: ") and ": error: " in err.rstrip().splitlines()[-1]


def test_an_unexpected_error_is_one_line_exit_1_and_can_show_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "_images", broken)
    monkeypatch.delenv("PACKBERT_TRACEBACK", raising=False)
    assert cli.main(["images"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: unexpected ZeroDivisionError: division by zero second line (probably a bug; run again with "
        "PACKBERT_TRACEBACK=1 to see where it happened)"
    ]
    monkeypatch.setenv("PACKBERT_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["images"])


def test_interruption_and_key_errors_are_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    def missing(args):
        raise KeyError("validation")

    monkeypatch.setattr(cli, "_images", interrupted)
    assert cli.main(["images"]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"
    monkeypatch.setattr(cli, "_images", missing)
    assert cli.main(["images"]) == 2
    assert capsys.readouterr().err.strip() == "error: validation"  # not "'validation'"


# ---- what `stats` shows: the packing report ----------------------------------------------


def test_packing_report_has_one_row_per_planner_with_the_plan_summary():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 65, size=500)
    histogram = sequence_length_histogram(lengths, 64)
    report = packing_report(histogram, 64, 6)
    summary_keys = list(pack_histogram(histogram, 64, 6).summary())
    assert report.index.name == "algorithm" and list(report.index) == list(ALGORITHMS)
    assert list(report.columns) == [key for key in summary_keys if key != "algorithm"]
    for algorithm in ALGORITHMS:
        per_pack = min(6, NNLSHP_MAX_SEQ_PER_PACK) if algorithm == "nnlshp" else 6
        expected = pack_histogram(histogram, 64, per_pack, algorithm).summary()
        row = report.loc[algorithm]
        for key in summary_keys:
            if key not in ("algorithm", "runtime_s"):
                assert row[key] == pytest.approx(expected[key]), (algorithm, key)
        assert row["num_sequences"] == 500 and row["num_packs"] >= row["lower_bound"]
    assert list(packing_report(histogram, 64, 6, algorithms=["spfhp"]).index) == ["spfhp"]
    with pytest.raises(ValueError, match="histogram has 64 bins but max_seq_length is 32"):
        packing_report(histogram, 32, 6)
    with pytest.raises(ValueError, match="unknown algorithm 'best'"):
        packing_report(histogram, 64, 6, algorithms=["best"])
    with pytest.raises(ValueError, match="plans is empty"):
        plan_table([])
