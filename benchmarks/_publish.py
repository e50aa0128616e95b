"""How each benchmark script hands over results: a printed Markdown table, optionally saved with a chart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def publish(table: str, output: str | Path | None, draw: Callable[[Path], None]) -> None:
    """Print `table`; with `output`, write it there and let `draw` save the PNG chart beside it."""
    print()
    print(table)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table + "\n", encoding="utf-8")
        draw(path.with_suffix(".png"))
