"""Data-parallel runs under torchrun (2 CPU processes, gloo), killed and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from pvm_bench.attention_store import read_store
from pvm_bench.cli import app
from pvm_bench.results import read_jsonl, sample_files

pytestmark = pytest.mark.slow(seconds=30)


def _run_args(*args: str) -> list[str]:
    return ["run", "--quiet", "--no-report", "--probes", "attention", *args]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pvm_bench", *_run_args(*args)]


def test_torchrun_killed_then_resumed_equals_single_process(tiny_qwen3_vl, fixture_data, tmp_path):
    common = ["--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--data-dir", str(fixture_data),
              "--out", str(tmp_path), "--batch-size", "1", "--max-new-tokens", "40"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the single-process baseline in this process (CliRunner): a subprocess would import torch again
    single = CliRunner().invoke(app, _run_args(*common, "--run-id", "single"))
    assert single.exit_code == 0, single.output

    proc = subprocess.Popen(
        _cli(*common, "--run-id", "dp", "--launcher", "torchrun", "--nproc", "2"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    run_dir = tmp_path / "dp"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if sum(len(read_jsonl(p)) for p in sample_files(run_dir)) >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()
    partial = sum(len(read_jsonl(p)) for p in sample_files(run_dir))
    assert 3 <= partial < 9, partial
    assert list(run_dir.glob("samples.rank*.jsonl")), "each rank writes its own shard"

    resumed = subprocess.run(
        [sys.executable, "-m", "pvm_bench", "run", "--quiet", "--resume", str(run_dir), "--launcher", "torchrun",
         "--nproc", "2"], env=env, capture_output=True, text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(run_dir.glob("samples.rank*.jsonl"))  # merged by rank 0
    rows = read_jsonl(run_dir / "samples.jsonl")
    assert len(rows) == 9 and len({r["sample_id"] for r in rows}) == 9

    def outputs(d):
        return sorted((r["sample_id"], r["output"]) for r in read_jsonl(d / "samples.jsonl"))

    assert outputs(run_dir) == outputs(tmp_path / "single")
    order = ["sample_id", "step", "layer"]
    a = read_store(run_dir).sort_values(order).reset_index(drop=True)
    b = read_store(tmp_path / "single").sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
