"""The README's code runs as written: a newcomer's first copy-paste must not fail."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_the_library_in_five_calls_runs_and_uses_its_plan():
    namespace: dict = {}
    exec(compile(_python_block_after("## The library in five calls"), "README.md", "exec"), namespace)
    assert len(namespace["packed"]) == namespace["plan"].num_packs


def test_the_quick_start_runs_on_a_small_csv(tmp_path, monkeypatch):
    """The quick start as written, in a folder holding the `my.csv` it reads (80 short reviews, two
    classes). The only change: fine_tune trains for 2 steps of 8 texts instead of 3 epochs."""
    import packbert_utils
    from packbert_utils.training.trainer import fine_tune

    words = ["moving", "dull", "sharp", "flat", "warm", "tedious", "bright", "clumsy"]
    rows = [f"a {words[i % 8]} little film, number {i},{i % 2}" for i in range(80)]
    (tmp_path / "my.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    calls: list[dict] = []

    def shortened(*args, **kwargs):
        calls.append(kwargs)
        return fine_tune(*args, **{**kwargs, "max_steps": 2, "sequences_per_step": 8, "progress": False})

    monkeypatch.setattr(packbert_utils, "fine_tune", shortened)
    namespace: dict = {}
    exec(compile(_python_block_after("## Quick start"), "README.md", "exec"), namespace)
    assert len(calls) == 1 and calls[0]["num_train_epochs"] == 3
    result = namespace["result"]
    assert result.optimizer_steps == 2 and set(result.metrics) == {"accuracy", "f1"}
    assert namespace["data"]["validation"].num_rows == 8  # 10% of the file, scored
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "my_model").iterdir()
    }
    logits = namespace["logits"]
    assert logits.shape == (2, 2) and logits.dtype == "float32"


def test_the_custom_training_loop_counts_sequences_not_rows():
    """The training-loop block as written, on 64 training rows instead of 512 (a few optimizer steps).

    Its point is the count: `items` is the step's real sequences (packs hold several each), and every
    optimizer step ran."""
    block = _python_block_after("### Your own training loop")
    assert "select(range(512))" in block
    namespace: dict = {}
    exec(compile(block.replace("select(range(512))", "select(range(64))"), "README.md", "exec"), namespace)
    packed, accumulation = namespace["packed"], namespace["accumulation"]
    rows_per_step = 2 * accumulation  # batch_size=2; the last batch may hold one row
    filled = sorted(sum(e >= 0 for e in row) for row in packed["example_ids"])  # sequences per row
    # rows are shuffled: the last step's count lies between its emptiest and its fullest possible rows
    assert sum(filled[: rows_per_step - 1]) <= namespace["items"] <= sum(filled[-rows_per_step:])
    assert namespace["items"] > rows_per_step  # sequences, not rows
    steps = len(namespace["loader"]) // accumulation
    state = namespace["optimizer"].state
    assert steps >= 2 and state and all(int(s["step"]) == steps for s in state.values())
