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
