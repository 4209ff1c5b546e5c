"""`pvm-bench run` flags -> RunConfig, through the CLI: defaults that never surprise, one-line errors.

The runner's execution is replaced by a no-op here (the config is what run.json records at
creation); tests/core/test_cli_run.py runs models end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.organism import BASE_DIR, PVM_DIR

runner = CliRunner()


@pytest.fixture
def no_execute(monkeypatch):
    """Create the run (run.json) but do not load the model or generate."""
    monkeypatch.setattr("pvm_bench.cli.run._execute", lambda runner, quiet: None)
    monkeypatch.setattr("pvm_bench.cli.run._finish", lambda runner, *a, **k: runner.close())


def _config(out: Path, run_id: str = "r") -> dict:
    return json.loads((out / run_id / "run.json").read_text())["config"]


def _invoke(*args: str):
    result = runner.invoke(app, ["run", "--quiet", *args])
    return result.exit_code, result.output


def test_organism_job_takes_its_defaults(no_execute, tmp_path):
    code, output = _invoke("--out", str(tmp_path), "--run-id", "r")
    assert code == 0, output
    cfg = _config(tmp_path)
    assert cfg["model"] == str(BASE_DIR) and cfg["pvm"] == str(PVM_DIR)
    assert cfg["tasks"] == ["swatch_recall"] and cfg["split"] == "test" and cfg["limit"] == 100
    assert cfg["batch_size"] == 32 and cfg["max_new_tokens"] == 256
    assert cfg["probes"] == ["attention", "lens", "branch"]  # branch: no --probes and an adapter
    assert cfg["threads"] == 1  # OMP_NUM_THREADS=1 from the root conftest


def test_explicit_flags_win_over_organism_defaults(no_execute, tmp_path):
    code, output = _invoke("--out", str(tmp_path), "--run-id", "r", "--batch-size", "4", "--probes", "attention,lens",
                           "--limit", "3", "--max-new-tokens", "32", "--threads", "2", "--tasks", "colour_recall")
    assert code == 0, output
    cfg = _config(tmp_path)
    assert cfg["batch_size"] == 4  # the CLI default value, but typed: it stays
    assert cfg["probes"] == ["attention", "lens"]  # nothing added
    assert (cfg["limit"], cfg["max_new_tokens"], cfg["threads"]) == (3, 32, 2)
    assert cfg["tasks"] == ["colour_recall"] and cfg["split"] == "test"


def test_benchmark_without_model_asks_for_model_in_one_line(no_execute, tmp_path):
    code, output = _invoke("--tasks", "mmmu,mathvista", "--data-dir", "tests/fixtures/data", "--out", str(tmp_path))
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: task 'mmmu' needs a model: pass --model")
    assert not any(tmp_path.iterdir())


def test_with_model_each_task_keeps_its_own_defaults(no_execute, tiny_qwen3_vl, fixture_data, tmp_path):
    code, output = _invoke("--model", str(tiny_qwen3_vl), "--tasks", "mmmu,mathvista", "--data-dir", str(fixture_data),
                           "--out", str(tmp_path), "--run-id", "r")
    assert code == 0, output
    cfg = _config(tmp_path)
    assert cfg["split"] is None and cfg["max_new_tokens"] is None and cfg["limit"] is None  # the tasks' own
    assert cfg["batch_size"] == 4 and cfg["probes"] == ["attention", "lens"]
    assert cfg["top_p"] is None and cfg["top_k"] is None and cfg["repetition_penalty"] is None


def test_pvm_without_probes_flag_adds_branch_only_then(no_execute, tiny_qwen3_vl, tmp_path):
    base = ["--model", str(tiny_qwen3_vl), "--pvm", str(PVM_DIR), "--tasks", "swatch_recall", "--out", str(tmp_path)]
    assert _invoke(*base, "--run-id", "a")[0] == 0
    assert _config(tmp_path, "a")["probes"] == ["attention", "lens", "branch"]
    assert _invoke(*base, "--run-id", "b", "--probes", "attention")[0] == 0
    assert _config(tmp_path, "b")["probes"] == ["attention"]
    assert _invoke(*base, "--run-id", "c", "--probes", "")[0] == 0
    assert _config(tmp_path, "c")["probes"] == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1 (got 0)"),
        (["--max-new-tokens", "-5"], "--max-new-tokens must be >= 1"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--limit", "-1"], "--limit must be >= 1"),
        (["--temperature", "-0.1"], "--temperature must be >= 0"),
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--temperature", "inf"], "--temperature must be a finite number"),
        (["--top-p", "0"], "--top-p must be > 0"),
        (["--top-p", "1.5"], "--top-p must be <= 1"),
        (["--top-k", "0"], "--top-k must be >= 1"),
        (["--repetition-penalty", "0"], "--repetition-penalty must be > 0"),
        (["--repetition-penalty", "inf"], "--repetition-penalty must be a finite number"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--run-id", "../../x"], "--run-id must be a plain directory name"),
        (["--run-id", "a/b"], "--run-id must be a plain directory name"),
        (["--run-id", ".hidden"], "--run-id must be a plain directory name"),
        (["--device", "foo"], "--device must be one of auto, cpu, mps, cuda or cuda:N"),
        (["--dtype", "fp8"], "--dtype must be one of auto"),
        (["--attn-implementation", "foo"], "--attn-implementation must be one of sdpa"),
        (["--device-map", "everywhere"], "--device-map must be one of auto"),
        (["--batch-size", "x"], "invalid value for '--batch-size'"),
        (["--bogus"], "no such option: --bogus"),
        (["--num_fewshot", "0"], "--num_fewshot is lmms-eval's and has no pvm-bench equivalent"),
        (["--model_args", "max_num_frames=5"], "--model_args key 'max_num_frames' has no pvm-bench equivalent"),
        (["--gen_kwargs", "num_beams=2"], "--gen_kwargs key 'num_beams' has no pvm-bench equivalent"),
        (["--gen_kwargs", "temperature"], "--gen_kwargs expects key=value pairs"),
        (["--gen_kwargs", "top_p=2"], "--top-p must be <= 1"),
        (["--batch-size", "2", "--model_args", "batch_size=3"], "--batch-size 2 and --model_args '3' disagree"),
        (["--force-resume"], "--force-resume only applies with --resume"),
        (
            ["--tasks", "mmmu_val"],
            "'mmmu_val' is lmms-eval's task name; the pvm-bench task is 'mmmu' (pass --tasks mmmu)",
        ),
    ],
)
def test_bad_option_is_one_error_line_and_exit_2(no_execute, tiny_qwen3_vl, tmp_path, args, words):
    code, output = _invoke("--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--out", str(tmp_path), *args)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], output
    assert not any(tmp_path.iterdir())  # nothing written


def test_lmms_eval_spellings_map_to_flags(no_execute, tiny_qwen3_vl, fixture_data, tmp_path):
    out = tmp_path / "logs"
    code, output = _invoke(  # the data is local: a run loads it before it creates its directory
        "--model",
        "qwen3_vl",
        "--model_args",
        f"pretrained={tiny_qwen3_vl},dtype=float32,attn_implementation=eager",
        "--tasks",
        "mmmu",
        "--data-dir",
        str(fixture_data),
        "--batch_size",
        "3",
        "--output_path",
        str(out),
        "--run_id",
        "r",
        "--log_samples",
        "--gen_kwargs",
        "temperature=0.7,top_p=0.8,top_k=20,max_new_tokens=7,do_sample=true,repetition_penalty=1.05",
    )
    assert code == 0, output
    assert "note: --model qwen3_vl read as lmms-eval's model type" in output
    cfg = _config(out)
    assert cfg["model"] == str(tiny_qwen3_vl) and cfg["dtype"] == "float32" and cfg["attn_implementation"] == "eager"
    assert cfg["batch_size"] == 3 and cfg["max_new_tokens"] == 7
    assert (cfg["temperature"], cfg["top_p"], cfg["top_k"], cfg["repetition_penalty"]) == (0.7, 0.8, 20, 1.05)


def test_resume_refuses_a_differing_option_and_accepts_an_equal_one(no_execute, tiny_qwen3_vl, fixture_data, tmp_path):
    assert _invoke("--model", str(tiny_qwen3_vl), "--tasks", "mmmu", "--out", str(tmp_path), "--run-id", "r",
                   "--max-new-tokens", "12", "--data-dir", str(fixture_data))[0] == 0
    before = (tmp_path / "r" / "run.json").read_bytes()
    code, output = _invoke("--resume", str(tmp_path / "r"), "--max-new-tokens", "64")
    assert code == 2 and "--max-new-tokens" in output and output.count("\n") == 1, output
    assert (tmp_path / "r" / "run.json").read_bytes() == before
    code, output = _invoke("--resume", str(tmp_path / "r"), "--max-new-tokens", "12", "--no-report")
    assert code == 0, output
