from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from pvm_bench import load_model
from pvm_bench.config import RunConfig
from pvm_bench.models.generation import Request, RowSampler, effective_decoding, generate, ordered_images
from pvm_bench.results import RunRecord
from pvm_bench.runner import Runner


def _requests(n: int) -> list[Request]:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    return [
        Request(msgs, [Image.new("RGB", (32 + 16 * (i % 3), 48), (40 * i, 100, 200))], seed=100 + i, key=i)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lm(tiny_qwen3_vl):
    return load_model(str(tiny_qwen3_vl), device="cpu")


def test_greedy_batched_equals_single(lm):
    reqs = _requests(4)
    batched = generate(lm, reqs, max_new_tokens=12)
    single = [generate(lm, [r], max_new_tokens=12)[0] for r in reqs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert all(g.n_generated == len(g.token_ids) for g in batched)


def test_sampling_depends_only_on_the_request_seed(lm):
    reqs = _requests(4)
    forward = generate(lm, reqs, max_new_tokens=10, temperature=0.7, top_p=0.9)
    backward = generate(lm, reqs[::-1], max_new_tokens=10, temperature=0.7, top_p=0.9)[::-1]
    assert [g.text for g in forward] == [g.text for g in backward]
    other = generate(lm, [Request(reqs[0].messages, reqs[0].images, seed=999)], max_new_tokens=10, temperature=0.7)
    assert other[0].text != forward[0].text
    greedy = generate(lm, reqs[:1], max_new_tokens=10)
    assert greedy[0].text != forward[0].text  # a random model at T=0.7 does not follow argmax


def test_truncation_and_eos_are_recorded(lm):
    eos = lm.tokenizer.eos_token_id
    gens = generate(lm, _requests(4), max_new_tokens=24, temperature=1.0, top_k=0)  # no top-k: full distribution
    reasons = set()
    for gen in gens:
        reasons.add(gen.finish_reason)
        if gen.finish_reason == "eos":
            assert gen.token_ids[-1] == eos and eos not in gen.token_ids[:-1] and not gen.truncated
            assert gen.n_generated <= 24
        else:
            assert gen.truncated and gen.n_generated == 24 and eos not in gen.token_ids
    assert reasons == {"eos", "length"}, reasons  # the seeded random model produces both


def test_image_parts_follow_their_index():
    a, b = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    msgs = [{"role": "user", "content": [{"type": "image", "index": 1}, {"type": "text", "text": "x"},
                                          {"type": "image", "index": 0}]}]
    assert ordered_images(Request(msgs, [a, b])) == [b, a]


def test_top_k_one_is_greedy_and_user_top_k_overrides_the_checkpoint(lm, monkeypatch):
    reqs = _requests(3)
    greedy = [g.token_ids for g in generate(lm, reqs, max_new_tokens=10)]
    assert [g.token_ids for g in generate(lm, reqs, max_new_tokens=10, temperature=1.0, top_k=1)] == greedy
    # The checkpoint's generation_config top_k=1 is honoured when the user gives none...
    monkeypatch.setattr(lm.hf_model.generation_config, "top_k", 1)
    assert [g.token_ids for g in generate(lm, reqs, max_new_tokens=10, temperature=1.0)] == greedy
    # ...and a user top_k wins over it (0 = no top-k filter, as in transformers).
    free = [g.token_ids for g in generate(lm, reqs, max_new_tokens=10, temperature=1.0, top_k=0)]
    assert free != greedy
    assert [g.token_ids for g in generate(lm, reqs, max_new_tokens=10, temperature=1.0, top_k=0, top_p=1.0)] == free


def test_checkpoint_repetition_penalty_applies_under_greedy(lm, monkeypatch):
    reqs = _requests(2)
    plain = [g.token_ids for g in generate(lm, reqs, max_new_tokens=16)]
    monkeypatch.setattr(lm.hf_model.generation_config, "repetition_penalty", 50.0)
    penalised = [g.token_ids for g in generate(lm, reqs, max_new_tokens=16)]
    assert penalised != plain
    assert all(len(set(ids)) == len(ids) for ids in penalised)  # a huge penalty forbids any repeat
    # The user's value wins (1.0 = none).
    assert [g.token_ids for g in generate(lm, reqs, max_new_tokens=16, repetition_penalty=1.0)] == plain


def test_same_seed_same_output_whatever_the_batch(lm):
    """Sampling with top-k, top-p and a repetition penalty depends only on each request's seed."""
    reqs = _requests(4)
    kwargs = dict(max_new_tokens=12, temperature=0.9, top_p=0.95, top_k=40, repetition_penalty=1.3)
    alone = [generate(lm, [r], **kwargs)[0].token_ids for r in reqs]
    together = [g.token_ids for g in generate(lm, reqs, **kwargs)]
    mixed = generate(lm, [reqs[3], reqs[1], reqs[0]], **kwargs)
    assert together == alone
    assert [g.token_ids for g in mixed] == [alone[3], alone[1], alone[0]]
    assert len({tuple(t) for t in alone}) > 1


def test_row_sampler_distribution_matches_transformers_warpers():
    torch.manual_seed(0)
    scores = torch.randn(3, 200) * 3
    scores[1, :5] = 10.0  # ties at the top-k boundary
    for temperature, top_k, top_p in [(0.7, 20, 0.8), (1.3, 5, 1.0), (1.0, 0, 0.5), (0.5, 3, 0.99)]:
        processors = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
        if top_k:
            processors.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))
        expected = torch.softmax(processors(torch.zeros(3, 1, dtype=torch.long), scores.clone()), dim=-1)
        got = RowSampler([0, 1, 2], temperature, top_p, top_k).distribution(scores)
        assert torch.allclose(got, expected, atol=1e-6), (temperature, top_k, top_p)


def test_effective_decoding_sources(lm, monkeypatch):
    gc = lm.hf_model.generation_config
    for key, value in {
        "top_p": 0.8,
        "top_k": 20,
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "do_sample": True,
    }.items():
        monkeypatch.setattr(gc, key, value)
    greedy = effective_decoding(lm, 0.0)
    assert greedy["do_sample"] is False and greedy["temperature"] == 0.0
    assert (greedy["top_p"], greedy["top_k"], greedy["repetition_penalty"]) == (None, None, 1.05)
    assert greedy["source"] == {"temperature": "user", "top_p": "greedy", "top_k": "greedy",
                                "repetition_penalty": "checkpoint"}
    assert greedy["checkpoint"]["temperature"] == 0.7  # recorded, never used
    sampled = effective_decoding(lm, 0.7, top_k=5, task={"top_p": 1.0, "max_new_tokens": 32})
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"], sampled["repetition_penalty"]) == (
        0.7,
        1.0,
        5,
        1.05,
    )
    assert sampled["source"] == {
        "temperature": "user",
        "top_p": "task",
        "top_k": "user",
        "repetition_penalty": "checkpoint",
    }
    for key in ("top_p", "top_k", "repetition_penalty"):
        monkeypatch.setattr(gc, key, None)
    bare = effective_decoding(lm, 1.0)  # transformers' global defaults, as model.generate(do_sample=True) uses
    assert (bare["top_p"], bare["top_k"], bare["repetition_penalty"]) == (1.0, 50, 1.0)
    assert set(bare["source"].values()) == {"user", "default"}


def _run_json(model_dir, data_dir, out, run_id, **overrides):
    config = RunConfig(model=str(model_dir), tasks=["mmstar"], data_dir=str(data_dir), out=str(out), run_id=run_id,
                       limit=2, max_new_tokens=4, probes=[], report=False, **overrides)
    runner = Runner.create(config)
    runner.execute(log=lambda _msg: None)
    return RunRecord.load(Path(out) / run_id)


def test_run_json_records_effective_decoding(tiny_qwen3_vl, fixture_data, tmp_path):
    greedy = _run_json(tiny_qwen3_vl, fixture_data, tmp_path, "greedy").decoding["mmstar"]
    assert greedy["do_sample"] is False and greedy["source"]["top_k"] == "greedy"
    assert greedy["repetition_penalty"] == 1.0
    sampled = _run_json(tiny_qwen3_vl, fixture_data, tmp_path, "sampled", temperature=0.7, top_k=7).decoding["mmstar"]
    assert sampled["do_sample"] is True and sampled["temperature"] == 0.7
    assert (sampled["top_k"], sampled["source"]["top_k"]) == (7, "user")
    assert sampled["source"]["top_p"] in {"checkpoint", "default"}


def test_system_prompt_turn(lm):
    req = _requests(1)[0]
    plain = generate(lm, [req], max_new_tokens=2)[0]
    assert "<|im_start|>system" not in plain.prompt
    sys_gen = generate(lm, [req], max_new_tokens=2, system_prompt="You are a helpful assistant.")[0]
    assert sys_gen.prompt.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user")
    assert sys_gen.prompt.endswith(plain.prompt.split("<|im_start|>user", 1)[1])


def test_cli_flags_reach_run_json(tiny_qwen3_vl, fixture_data, tmp_path):
    from typer.testing import CliRunner

    from pvm_bench.cli.main import app

    args = ["run", "--quiet", "--probes", "", "--no-report", "--model", str(tiny_qwen3_vl), "--tasks", "mmbench_en",
            "--data-dir", str(fixture_data), "--out", str(tmp_path), "--run-id", "cli", "--limit", "2",
            "--max-new-tokens", "3", "--temperature", "0.5", "--top-k", "3", "--repetition-penalty", "1.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    decoding = RunRecord.load(tmp_path / "cli").decoding["mmbench_en"]
    assert (decoding["temperature"], decoding["top_k"], decoding["repetition_penalty"], decoding["top_p"]) == (
        0.5,
        3,
        1.2,
        1.0,
    )
    assert decoding["source"] == {"temperature": "user", "top_p": "task", "top_k": "user", "repetition_penalty": "user"}


def test_temperature_source_says_whether_the_user_gave_it(tiny_qwen3_vl, fixture_data, tmp_path):
    """run.json's decoding source: "default" when --temperature was not passed (also after a resume),
    "user" when it was, the protocol's name when ``--protocol pvm-paper`` filled it in."""
    from typer.testing import CliRunner

    from pvm_bench.cli import app

    def source(run_id: str, *extra: str, resume: bool = False) -> str:
        args = ["run", "--quiet", "--no-report", "--resume", str(tmp_path / run_id)] if resume else [
            "run", "--quiet", "--probes", "", "--maps", "0", "--no-report", "--model", str(tiny_qwen3_vl),
            "--tasks", "mmbench_en", "--data-dir", str(fixture_data), "--out", str(tmp_path), "--run-id", run_id,
            "--limit", "1", "--max-new-tokens", "2", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return RunRecord.load(tmp_path / run_id).decoding["mmbench_en"]["source"]["temperature"]

    assert source("plain") == "default"
    assert source("plain", resume=True) == "default"
    assert source("given", "--temperature", "0") == "user"
    assert source("paper", "--protocol", "pvm-paper", "--repeats", "1") == "pvm-paper"
