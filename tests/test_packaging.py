"""`pip install` outside the workshop: the dependencies are declared, the wheel installs and imports.

The Makefile installs `requirements.txt` before the package, so a dependency missing from `pyproject.toml`
goes unnoticed there; a practitioner's `pip install .` then gives a package that fails on first use. Two
checks close that gap, each cheap:

- `test_every_third_party_import_is_a_declared_dependency` reads every import statement of the package
  (with `ast`, so imports inside functions count too), maps the modules to the distributions that provide
  them in this environment (`importlib.metadata.packages_distributions`), and asserts that each is declared
  in `pyproject.toml`; and that nothing is declared that the package does not import (with the reason
  written here), so the list cannot go stale in either direction when code changes.
- `test_the_wheel_installs_and_imports_in_a_fresh_venv` builds the wheel as `pip` would, installs it
  (without its dependencies: installing torch and transformers would take minutes and gigabytes) into a
  new venv that does not see this environment's packages, and imports it there with no `PYTHONPATH`. That
  checks what the dependency test cannot: that the wheel holds every sub-package and data file, that its
  metadata declares the dependencies of `pyproject.toml`, and that `import packbert_utils` works from the
  installed files alone (the flat API is lazy, so the import needs none of the heavy dependencies).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "packbert_utils"

# Declared but never imported by the package, and why each is needed anyway.
NEEDED_WITHOUT_IMPORT = {
    "accelerate": "transformers' Trainer (fine_tune) refuses to run without it",
}


def _canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): case and -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _canonical(re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0])


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_requirement_name(requirement) for requirement in project["dependencies"]}


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> a file that imports it, for every absolute import in the package."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_is_a_declared_dependency():
    declared = _declared()
    providers = importlib.metadata.packages_distributions()
    third_party = {
        module: where
        for module, where in _imported_top_level_modules().items()
        if module not in sys.stdlib_module_names and module != "packbert_utils"
    }
    assert {"torch", "transformers", "seqeval"} <= set(third_party)  # the scan sees lazy imports too
    imported_distributions = set()
    for module, where in sorted(third_party.items()):
        distributions = {_canonical(name) for name in providers.get(module, [])}
        assert distributions, f"{where} imports {module!r}, which no installed distribution provides"
        assert distributions & declared, (
            f"{where} imports {module!r} (distribution {sorted(distributions)}), which pyproject.toml's "
            "[project] dependencies do not declare: `pip install packbert-utils` would not install it."
        )
        imported_distributions |= distributions & declared
    unexplained = declared - imported_distributions - set(NEEDED_WITHOUT_IMPORT)
    assert not unexplained, f"declared in pyproject.toml but never imported: {sorted(unexplained)}"


@pytest.mark.slow
def test_the_wheel_installs_and_imports_in_a_fresh_venv(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*command: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    # the wheel, built by pip from the source tree (no isolated build env: no download of setuptools)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, REPO)
    (wheel,) = tmp_path.glob("packbert_utils-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        requires = archive.read(metadata).decode().splitlines()
    shipped = {
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert shipped - names == set(), "files of the package missing from the wheel"
    prefix = "Requires-Dist:"
    required = {_requirement_name(line[len(prefix) :]) for line in requires if line.startswith(prefix)}
    assert required == _declared()

    # a venv of its own, which sees none of this environment's packages; pip from here installs into it
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)
    out = run(
        python,
        "-c",
        "import packbert_utils, importlib.util as u; print(packbert_utils.__file__); "
        "print(packbert_utils.__all__[:3]); print(u.find_spec('numpy') is None)",
    )
    location, names_line, no_numpy = out.splitlines()
    assert Path(location).is_relative_to(venv), location  # the installed copy, not this repository
    assert names_line.startswith("['") and no_numpy == "True"
