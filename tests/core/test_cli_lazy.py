"""The command table: `pvm-bench --help` imports no heavy library, and the table matches the modules."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import types

import pytest
import typer
from typer.testing import CliRunner

from pvm_bench.cli.main import BENCH_COMMANDS, COMMANDS, app

runner = CliRunner()
HEAVY = ("torch", "pandas", "scipy", "transformers", "datasets", "matplotlib", "numpy")


def test_importing_the_cli_loads_no_heavy_library():
    code = f"import sys, pvm_bench.cli.main; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_top_level_help_is_fast_and_lists_every_command():
    cmd = [
        sys.executable,
        "-c",
        "import sys; from pvm_bench.cli.main import app; sys.argv = ['pvm-bench', '--help']; app()",
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""})
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    for name in [*COMMANDS, "run", "tasks", "models", "bench"]:
        assert f" {name} " in result.stdout, name
    assert elapsed < 5.0  # 0.3 s on an idle 2-core machine; 6-10 s when commands imported torch


def _registered(module: str, hook: str) -> set[str]:
    holder = typer.Typer()
    getattr(importlib.import_module(module), hook)(holder)
    return set(typer.main.get_group(holder).commands)


@pytest.mark.parametrize(("table", "hook"), [(COMMANDS, "register"), (BENCH_COMMANDS, "register_bench")])
def test_table_matches_what_the_modules_register(table, hook):
    modules = {spec.module for spec in table.values() if spec.hook == hook}
    for module in modules:
        try:
            names = _registered(module, hook)
        except ModuleNotFoundError as exc:  # a part not in this build is simply not listed
            pytest.skip(f"{module}: {exc}")
        listed = {name for name, spec in table.items() if spec.module == module}
        assert names == listed, (
            f"{module} registers {sorted(names)}, the table in pvm_bench/cli.py lists {sorted(listed)}"
        )


@pytest.mark.parametrize("path", [["pvm", "train"], ["organism", "train"], ["bench", "probe"], ["bench", "pvm"]])
def test_commands_that_run_a_model_take_threads(path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--threads" in result.output
    # organism train keeps its recipe's one thread by default (the shipped weights' bytes depend on it)
    assert ("recipe's 1" if path[0] == "organism" else "OMP_NUM_THREADS") in result.output


def test_usage_errors_are_one_line():
    result = runner.invoke(app, ["nope"])
    assert result.exit_code == 2 and result.output.strip() == "error: no such command 'nope' (see `pvm-bench --help`)"
    result = runner.invoke(app, ["report", "--bogus"])
    assert result.exit_code == 2 and result.output.strip().startswith("error: no such option: --bogus")
    assert result.output.count("\n") == 1


def test_silencing_progress_bars_does_not_import_datasets(monkeypatch):
    """`run` turns datasets' progress bars off without importing datasets (~0.8 s per CLI process):
    through its variable, read at its import; an imported datasets is switched off directly."""
    from pvm_bench.cli.run import _silence_library_progress

    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    _silence_library_progress()
    assert "datasets" not in sys.modules
    assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"

    calls = []  # an imported datasets (a stand-in here) is switched off by its own function
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(disable_progress_bars=lambda: calls.append(1)))
    _silence_library_progress()
    assert calls == [1]
