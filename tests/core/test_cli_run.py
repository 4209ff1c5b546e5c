"""The runner end to end through the CLI, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.results import RunRecord, SampleRecord, read_jsonl

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--quiet", "--probes", "", "--no-report", *args])
    return result.exit_code, result.output


def _base_args(model: Path, data: Path, out: Path, run_id: str) -> list[str]:
    return ["--model", str(model), "--tasks", "mmmu", "--data-dir", str(data), "--out", str(out),
            "--run-id", run_id, "--max-new-tokens", "12"]


def _outputs(run_dir: Path) -> dict[str, str]:
    return {row["sample_id"]: row["output"] for row in read_jsonl(run_dir / "samples.jsonl")}


def test_run_writes_contract_files_and_batch_size_does_not_change_outputs(tiny_qwen3_vl, fixture_data, tmp_path):
    code, output = _run(*_base_args(tiny_qwen3_vl, fixture_data, tmp_path, "b4"), "--batch-size", "4")
    assert code == 0, output
    code, output = _run(*_base_args(tiny_qwen3_vl, fixture_data, tmp_path, "b1"), "--batch-size", "1")
    assert code == 0, output
    record = RunRecord.load(tmp_path / "b4")
    assert record.status == "completed" and record.counts["samples"] == 9
    assert record.model["family"] == "qwen3_vl" and len(record.model["fingerprint"]) == 16
    assert record.datasets["mmmu"]["n"] == 9 and len(record.datasets["mmmu"]["fingerprint"]) == 16
    assert record.versions["torch"] and record.versions["transformers"]
    rows = read_jsonl(tmp_path / "b4" / "samples.jsonl")
    assert len(rows) == 9
    for row in rows:
        rec = SampleRecord.model_validate(row)
        assert rec.variant == "base" and rec.task == "mmmu" and 0 < rec.n_generated <= 12
        assert "<|im_start|>user" in rec.prompt and rec.max_new_tokens == 12
    assert _outputs(tmp_path / "b4") == _outputs(tmp_path / "b1")


def test_kill_and_resume_equals_uninterrupted_run(tiny_qwen3_vl, fixture_data, tmp_path):
    args = _base_args(tiny_qwen3_vl, fixture_data, tmp_path, "full") + ["--batch-size", "1", "--max-new-tokens", "48"]
    code, output = _run(*args)
    assert code == 0, output

    killed_args = _base_args(tiny_qwen3_vl, fixture_data, tmp_path, "killed") + [
        "--batch-size",
        "1",
        "--max-new-tokens",
        "48",
    ]
    cmd = [sys.executable, "-m", "pvm_bench", "run", "--quiet", "--probes", "", "--no-report", *killed_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    samples = tmp_path / "killed" / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(read_jsonl(samples))
    assert 3 <= n_before < 9, f"kill landed after {n_before} samples"
    assert RunRecord.load(tmp_path / "killed").status == "running"  # a kill -9 cannot update run.json

    code, output = _run("--resume", str(tmp_path / "killed"))
    assert code == 0, output
    rows = read_jsonl(samples)
    assert len(rows) == 9 and len({r["sample_id"] for r in rows}) == 9
    assert _outputs(tmp_path / "killed") == _outputs(tmp_path / "full")
    record = RunRecord.load(tmp_path / "killed")
    assert record.status == "completed" and len(record.resumed) == 1


def test_unknown_task_is_one_clear_line(tiny_qwen3_vl, tmp_path):
    code, output = _run("--model", str(tiny_qwen3_vl), "--tasks", "mmmu,nope", "--out", str(tmp_path))
    assert code == 2
    assert "error: unknown task 'nope'" in output
    assert not any(tmp_path.iterdir())  # nothing written on bad input


def test_missing_model_dir(fixture_data, tmp_path):
    code, output = _run(*_base_args(tmp_path / "no-such-model", fixture_data, tmp_path / "out", "x"))
    assert code == 2
    assert "model directory" in output and "does not exist" in output


def test_unwritable_output_dir(tiny_qwen3_vl, fixture_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, output = _run(*_base_args(tiny_qwen3_vl, fixture_data, blocker / "reports", "x"))
    assert code == 2
    assert "is not writable" in output and "--out" in output


def test_existing_run_id_is_refused_and_left_intact(tiny_qwen3_vl, fixture_data, tmp_path):
    args = _base_args(tiny_qwen3_vl, fixture_data, tmp_path, "same") + ["--limit", "2"]
    assert _run(*args)[0] == 0
    before = (tmp_path / "same" / "samples.jsonl").read_bytes()
    code, output = _run(*args)
    assert code == 2 and "already exists" in output and "--resume" in output
    assert (tmp_path / "same" / "samples.jsonl").read_bytes() == before


def test_corrupt_image_is_reported_per_sample_and_other_results_kept(tiny_qwen3_vl, fixture_data, tmp_path):
    frame = pd.read_parquet(fixture_data / "mmmu" / "validation.parquet")
    bad = dict(frame.at[1, "image_1"])
    bad["bytes"] = b"\x89PNG\r\n\x1a\n garbage"
    frame.at[1, "image_1"] = bad
    (tmp_path / "data" / "mmmu").mkdir(parents=True)
    frame.to_parquet(tmp_path / "data" / "mmmu" / "validation.parquet")
    code, output = _run(*_base_args(tiny_qwen3_vl, tmp_path / "data", tmp_path / "out", "c"))
    assert code == 1
    assert "sample 'validation_Art_2'" in output and "cannot decode image" in output
    rows = read_jsonl(tmp_path / "out" / "c" / "samples.jsonl")
    assert len(rows) == 9
    errors = [r for r in rows if r["error"]]
    assert [r["sample_id"] for r in errors] == ["validation_Art_2"] and errors[0]["finish_reason"] == "error"
    assert json.loads((tmp_path / "out" / "c" / "run.json").read_text())["counts"]["errors"] == 1


def test_models_and_tasks_listings():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "qwen3_vl" in result.output and "llava_onevision" in result.output
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0 and "mmmu" in result.output and "pvm-paper" in result.output
