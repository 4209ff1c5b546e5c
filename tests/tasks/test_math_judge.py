"""The local judge: a tiny causal LM built offline, run through a task and through the Runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pvm_bench.scoring.judge import DEMO_PROMPT, Judge, JudgeError, attach_judge, create_test_prompt
from pvm_bench.tasks import get_registry

CHAT = "{% for m in messages %}<|u|>{{ m['content'] }}<|e|>{% endfor %}{% if add_generation_prompt %}<|a|>{% endif %}"


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Qwen2 causal LM with a character tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from pvm_bench.testing import build_char_tokenizer

    tok = build_char_tokenizer(("<|e|>", "<|p|>", "<|u|>", "<|a|>"), eos="<|e|>", pad="<|p|>", chat_template=CHAT)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = Qwen2ForCausalLM(config)
    out = tmp_path_factory.mktemp("judge") / "tiny-judge"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_judge_prompt_is_lmms_evals() -> None:
    # lmms-eval's DEMO_PROMPT is a normal (not raw) string: "\n" in the last example are newlines.
    assert "blue?\nChoices:\n(A) 3/11\n(B) 8/11" in DEMO_PROMPT
    prompt = create_test_prompt("Question: How many?", "There are 3.")
    assert prompt.startswith("Please read the following example.")
    assert prompt.endswith("Extracted answer: B\n\nQuestion: How many?\n\nThere are 3.\n\nExtracted answer: ")


def test_judge_loads_greedy_and_scores_through_a_task(tiny_judge_dir: Path, fixture_data: Path) -> None:
    judge = Judge.load(str(tiny_judge_dir), max_new_tokens=6)
    a = judge.extract("Question: How many squares?", "There are 3 white squares.")
    assert isinstance(a, str) and a == judge.extract("Question: How many squares?", "There are 3 white squares.")
    info = judge.info()
    assert info["id"] == str(tiny_judge_dir) and len(info["fingerprint"]) == 16 and info["decoding"] == "greedy"
    reg = get_registry(entry_points=False)
    for name in ("mathvista", "mathverse", "mathvision", "mathvista_lmms"):
        task = reg.tasks[name]
        sample = task.load(data_dir=fixture_data)[1]
        task.set_judge(judge)
        score = task.score(sample, "There are 3 white squares.")
        assert score.details["extractor"] == "judge", name
        assert isinstance(score.details["judge_raw"], str)


def test_attach_judge_refuses_tasks_without_a_judge_hook(tiny_judge_dir: Path) -> None:
    reg = get_registry(entry_points=False)
    with pytest.raises(JudgeError, match="none of the selected tasks"):
        attach_judge(str(tiny_judge_dir), [reg.tasks["mmstar"]])
    with pytest.raises(JudgeError, match="cannot load judge model"):
        attach_judge("/nonexistent/judge-dir", [reg.tasks["mathvista"]])


def test_runner_records_judge_in_run_json_and_samples(tiny_qwen3_vl: Path, tiny_judge_dir: Path, fixture_data: Path,
                                                      tmp_path: Path) -> None:
    from pvm_bench.config import RunConfig
    from pvm_bench.results import RunRecord
    from pvm_bench.runner import Runner

    config = RunConfig(model=str(tiny_qwen3_vl), tasks=["mathvista"], data_dir=str(fixture_data), out=str(tmp_path),
                       run_id="judged", limit=2, max_new_tokens=4, probes=[], report=False, judge=str(tiny_judge_dir))
    Runner.create(config).execute(log=lambda _msg: None)
    record = RunRecord.load(tmp_path / "judged")
    assert record.model["judge"]["id"] == str(tiny_judge_dir)
    assert len(record.model["judge"]["fingerprint"]) == 16 and record.model["judge"]["tasks"] == ["mathvista"]
    rows = [json.loads(line) for line in (tmp_path / "judged" / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        detail = row["score_detail"]
        assert detail["extractor"] == "judge" and isinstance(detail["details"]["judge_raw"], str)


def test_cli_judge_flag(tiny_qwen3_vl: Path, tiny_judge_dir: Path, fixture_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pvm_bench.cli.main import app

    args = ["run", "--quiet", "--probes", "", "--no-report", "--model", str(tiny_qwen3_vl), "--tasks", "mathverse",
            "--data-dir", str(fixture_data), "--limit", "1", "--max-new-tokens", "4", "--out", str(tmp_path)]
    ok = CliRunner().invoke(app, [*args, "--run-id", "cli-judge", "--judge", str(tiny_judge_dir)])
    assert ok.exit_code == 0, ok.output
    run = json.loads((tmp_path / "cli-judge" / "run.json").read_text())
    assert run["model"]["judge"]["tasks"] == ["mathverse"]
    bad = CliRunner().invoke(app, [*args, "--run-id", "cli-bad-judge", "--judge", str(tmp_path / "missing")])
    assert bad.exit_code != 0 and "error: cannot load judge model" in bad.output
