"""``run --protocol lmms-eval`` / ``--system-prompt`` / ``--min-pixels`` / ``--max-pixels`` through the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pvm_bench.cli.main import app
from pvm_bench.results import RunRecord, read_jsonl

runner = CliRunner()
SYSTEM_TURN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"


def _run(model: Path, data: Path, out: Path, run_id: str, *extra: str) -> tuple[int, str]:
    args = [
        "run",
        "--quiet",
        "--probes",
        "",
        "--no-report",
        "--model",
        str(model),
        "--tasks",
        "mmmu",
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--run-id",
        run_id,
        "--limit",
        "2",
        "--max-new-tokens",
        "3",
        *extra,
    ]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def _prompts(run_dir: Path) -> list[str]:
    return [row["prompt"] for row in read_jsonl(run_dir / "samples.jsonl")]


def test_lmms_eval_protocol_sends_the_system_turn_and_records_effective_values(tiny_qwen3_vl, fixture_data, tmp_path):
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "lmms", "--protocol", "lmms-eval",
                        "--min-pixels", "1024", "--max-pixels", "4096")
    assert code == 0, output
    prompts = _prompts(tmp_path / "lmms")
    assert len(prompts) == 2 and all(p.startswith(SYSTEM_TURN) for p in prompts)
    record = RunRecord.load(tmp_path / "lmms")
    assert record.config["protocol"] == "lmms-eval" and record.config["max_pixels"] == 4096
    gen = record.generation["mmmu"]
    assert gen["protocol"] == "lmms-eval" and gen["system_prompt"] == "You are a helpful assistant."
    assert (gen["min_pixels"], gen["max_pixels"]) == (1024, 4096)
    assert gen["protocol_sources"] == {"system_prompt": "lmms-eval", "min_pixels": "user", "max_pixels": "user"}

    # Resuming with another protocol is refused in one line; the run is left as it was.
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "lmms", "--resume", str(tmp_path / "lmms"),
                        "--protocol", "default")
    assert code == 2 and "--protocol default (the run has lmms-eval)" in output


def test_default_run_sends_no_system_turn_and_keeps_the_processor_sizes(tiny_qwen3_vl, fixture_data, tmp_path):
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "plain")
    assert code == 0, output
    prompts = _prompts(tmp_path / "plain")
    assert all(p.startswith("<|im_start|>user\n") and "system" not in p for p in prompts)
    gen = RunRecord.load(tmp_path / "plain").generation["mmmu"]
    assert gen["protocol"] == "default" and gen["system_prompt"] is None
    assert (gen["min_pixels"], gen["max_pixels"]) == (1024, 16384)  # the checkpoint's own
    assert gen["protocol_sources"] == {"system_prompt": "none", "min_pixels": "processor", "max_pixels": "processor"}

    # An explicit empty system prompt removes the preset's; the prompts are then the default run's.
    code, output = _run(
        tiny_qwen3_vl,
        fixture_data,
        tmp_path,
        "nosys",
        "--protocol",
        "lmms-eval",
        "--system-prompt",
        "",
        "--min-pixels",
        "1024",
        "--max-pixels",
        "16384",
    )
    assert code == 0, output
    assert _prompts(tmp_path / "nosys") == prompts
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "own", "--system-prompt", "Answer briefly.")
    assert code == 0, output
    assert all(p.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n") for p in _prompts(tmp_path / "own"))


def test_bad_protocol_options_are_one_line(tiny_qwen3_vl, fixture_data, tmp_path):
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "x", "--protocol", "vlmeval")
    assert code == 2 and "--protocol must be one of default, lmms-eval, pvm-paper (got 'vlmeval')" in output
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "y", "--min-pixels", "5000", "--max-pixels", "4096")
    assert code == 2 and "--max-pixels must be >= --min-pixels (5000) (got 4096)" in output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # Below the processor's own minimum: refused when the model loads, recorded as failed.
    code, output = _run(tiny_qwen3_vl, fixture_data, tmp_path, "z", "--max-pixels", "512")
    assert code == 2 and "--min-pixels 1024 is above --max-pixels 512" in output
    assert RunRecord.load(tmp_path / "z").status == "failed"
