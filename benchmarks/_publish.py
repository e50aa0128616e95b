"""What the benchmark scripts share: run names of a variant plus levers, and handing over results (a printed
Markdown table, optionally saved with a chart)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def publish(table: str, output: str | Path | None, draw: Callable[[Path], None]) -> None:
    """Print `table`; with `output`, write it there and let `draw` save the PNG chart beside it.

    A last line records when and how it ran (load average, threads, allocator settings): the figures
    mean little without it."""
    table = f"{table}\n\n{conditions()}"
    print()
    print(table)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table + "\n", encoding="utf-8")
        draw(path.with_suffix(".png"))


def conditions() -> str:
    """When and under which conditions the figures were measured, as one line."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    allocator = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    threads = os.environ.get("OMP_NUM_THREADS", "-")
    return (
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores; "
        f"load average at the end {load} (1, 5, 15 min); OMP_NUM_THREADS={threads}; "
        f"allocator settings {allocator or 'glibc defaults'}."
    )


def run_settings(name: str, variants: Sequence[str], levers: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of a run name such as "packed+bf16": its variant, then each lever's settings."""
    variant, *chosen = name.split("+")
    if variant not in variants or any(lever not in levers for lever in chosen):
        raise ValueError(
            f"unknown run {name!r}: a variant of {tuple(variants)} with +levers from {sorted(levers)}"
        )
    settings: dict[str, Any] = {"variant": variant}
    for lever in chosen:
        settings.update(levers[lever])
    return settings
