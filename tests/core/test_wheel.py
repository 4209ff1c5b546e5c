"""The wheel carries the benchmarks: build it, install it alone into a clean venv, and run from it.

The venv gets the wheel with ``--no-deps``; its dependencies come from this interpreter's
site-packages through one ``.pth`` line (a directory named by a ``.pth`` line is only appended to
``sys.path``: the ``.pth`` files inside it, such as an editable install's, are not run, so the checkout
is not importable there). Commands run with no ``PYTHONPATH`` from a folder outside the checkout, so
neither the repository's ``pvm_bench/`` nor its ``tasks/`` can be what they load.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("hatchling")  # the build backend, used without build isolation (no index needed)

pytestmark = pytest.mark.slow(seconds=15)
ROOT = Path(__file__).resolve().parents[2]


def _sh(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_wheel_lists_tasks_and_runs_the_default_job(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", COLUMNS="200")
    dist = tmp_path / "dist"
    _sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        tmp_path, env)
    (wheel,) = dist.glob("pvm_bench-*.whl")

    venv = tmp_path / "venv"
    _sh([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    _sh([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], tmp_path, env)
    purelib = Path(_sh([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
                   .strip())
    deps = site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
    (purelib / "_project_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")

    where = _sh(
        [str(python), "-c", "import pvm_bench.tasks.registry as r; print(r.__file__); print(r.builtin_task_dir())"],
        tmp_path,
        env,
    ).split()
    assert all(Path(p).is_relative_to(purelib) for p in where), where  # the installed copy, not the checkout
    assert Path(where[1]).name == "builtin-tasks"

    listed = _sh([str(venv / "bin" / "pvm-bench"), "tasks"], tmp_path, env)
    rows = {line.split("│")[1].strip() for line in listed.splitlines() if line.startswith("│")}
    assert {"mmmu", "mathvista", "mmstar", "swatch_recall", "pvm-paper", "length-diagnostics"} <= rows

    out = _sh([str(venv / "bin" / "pvm-bench"), "run", "--limit", "4", "--out", "runs", "--run-id", "w", "--quiet"],
              tmp_path, env, timeout=600)
    assert "8 records over 2 variant(s)" in out
    run = json.loads((tmp_path / "runs" / "w" / "run.json").read_text())
    assert run["status"] == "completed" and run["variants"] == ["base", "pvm"]
    assert {k: (v["source"], v["origin"]) for k, v in run["datasets"].items()} == {
        "swatch_recall": ("builtin", "builtin tasks/length_diagnostics.py")}
    tasks = json.loads((tmp_path / "runs" / "w" / "tasks.json").read_text())["tasks"]
    assert (tasks["swatch_recall"]["source"], tasks["swatch_recall"]["origin"]) == (
        "builtin",
        "tasks/length_diagnostics.py",
    )
    metrics = (tmp_path / "runs" / "w" / "metrics.csv").read_text().splitlines()
    headline = [row.split(",") for row in metrics if row.startswith("swatch_recall,") and ",accuracy,,," in row]
    assert [(r[1], r[8]) for r in headline] == [("base", "4"), ("pvm", "4")]
