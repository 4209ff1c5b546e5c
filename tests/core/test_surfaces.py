"""Each package states its public surface in ``__init__`` (``__all__``) over its implementation modules,
as inspect_ai does: UKGovernmentBEIS/inspect_ai src/inspect_ai/scorer/__init__.py (commit 01b5632)
imports from its private modules (``._answer``, ``._metric``, ``._scorer``..., lines 1-33) and lists the
public names in ``__all__`` (lines 35-71). pvm-bench keeps its module names public (importers may take
a name from where it lives); the ``__init__`` says which names are the package's interface.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["pvm_bench.cli", "pvm_bench.data", "pvm_bench.runner", "pvm_bench.scoring", "pvm_bench.tasks"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_states_its_job_and_its_surface(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__doc__ and "import" in package.__doc__  # what it owns and what it may import
    assert package.__all__ and all(getattr(package, attr) is not None for attr in package.__all__)


def test_the_runner_re_exports_nothing() -> None:
    """run.py imports what it uses; importers take names from where they live or the package surface."""
    assert "noqa: F401" not in (ROOT / "pvm_bench" / "runner" / "run.py").read_text()


def test_readme_import_paths_work() -> None:
    """Every ``from pvm_bench... import ...`` line of the README still imports."""
    lines = re.findall(r"^from (pvm_bench[\w.]*) import ([\w, ]+)$", (ROOT / "README.md").read_text(), re.M)
    assert len(lines) >= 3
    for module, names in lines:
        imported = importlib.import_module(module)
        for attr in names.split(","):
            assert hasattr(imported, attr.strip()), f"{module}.{attr.strip()}"


def test_surfaces_load_lazily() -> None:
    """Importing a helper of the CLI or the runner builds neither the command tree nor the runner."""
    code = ("import sys, pvm_bench.cli.support, pvm_bench.runner.maps, pvm_bench.runner.files; "
            "print(sorted(m for m in ('pvm_bench.cli.main', 'pvm_bench.runner.run', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
