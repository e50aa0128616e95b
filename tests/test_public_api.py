"""The flat public API: every name resolves to where the table says, and importing it stays light."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import packbert_utils

PACKAGE = Path(packbert_utils.__file__).parent


@pytest.mark.parametrize("name", packbert_utils.__all__)
def test_each_public_name_comes_from_the_module_the_table_names(name: str) -> None:
    value = getattr(packbert_utils, name)
    module = packbert_utils._MODULE_OF[name]
    if inspect.isfunction(value) or inspect.isclass(value):
        assert value.__module__ == f"packbert_utils.{module}"
    source = sys.modules[f"packbert_utils.{module}"]
    assert getattr(source, name) is value


def test_the_type_checking_imports_list_exactly_the_public_names() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If))
    imported = {
        alias.name for node in ast.walk(guarded) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert imported == set(packbert_utils.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'pack_everything'"):
        packbert_utils.pack_everything  # noqa: B018


def _modules_after(code: str) -> set[str]:
    output = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(output.split())


def test_importing_the_package_and_the_cli_help_load_neither_torch_nor_transformers() -> None:
    light = _modules_after("import packbert_utils")
    assert "torch" not in light and "transformers" not in light and "datasets" not in light
    cli = _modules_after(
        "import contextlib, io\nfrom packbert_utils.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert "torch" not in cli and "transformers" not in cli
    heavy = _modules_after("import packbert_utils\npackbert_utils.pack_dataset")
    assert "datasets" in heavy  # the lazy name really loads its module
