"""PAI's image-free guidance (github.com/LALBJ/PAI, CFG.py) against a step-by-step reference.

The reference recomputes, for every row and step of a batched (left-padded) greedy run, the
conditional logits (full prompt with its image + the tokens generated so far) and the
image-free logits (the prompt without its image tokens, through the plain model, no cache,
no padding) one row at a time, and applies ``gamma * (c - u) + u`` with tokens below
``0.1 * max p`` masked (PAI/CFG.py:53-57).
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from pvm_bench.fixes.pai import PAIConfig, pai_active
from pvm_bench.fixes.pai_guidance import ImageFreeStream, image_free_ids
from pvm_bench.models.generation import encode, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.testing import build_tiny_model
from pvm_bench.variants import resolve_variants

from .test_fixes import NEW_TOKENS, batch, hf_generate

GAMMA = 1.1


@pytest.fixture(scope="module")
def lm(tiny_model):
    path = tiny_model("qwen3_vl", seed=1, size="small", init_std=0.2, name="small")  # test_fixes.py's model
    return load_model(str(path))


def _last_logp(lm, **inputs) -> torch.Tensor:
    with torch.inference_mode():
        logits = lm.hf_model(**inputs).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)


def reference_logits(lm, sequences: torch.Tensor, prompt_len: int, gamma: float) -> torch.Tensor:
    """``[steps, B, V]`` guided scores recomputed per row and step without caches or padding.

    The image-free pass runs with any PVM branch off (it is the prompt without the image).
    """
    pvm = lm.pvm
    strip = set(image_free_ids(lm))
    rows = []
    for r, request in enumerate(batch()):
        enc, _ = encode(lm, [request])
        prompt = enc["input_ids"][0].tolist()
        free = [t for t in prompt if t not in strip]
        generated = sequences[r, prompt_len:].tolist()
        steps = []
        for t in range(NEW_TOKENS):
            ids = torch.tensor([prompt + generated[:t]])
            # Per-token side inputs (Qwen3-VL's mm_token_type_ids) grow with text (type 0) tokens.
            cond_inputs = {
                k: torch.cat([v, v.new_zeros(1, t)], 1) if torch.is_tensor(v) and v.shape == (1, len(prompt)) else v
                for k, v in enc.items()
            }
            cond_inputs.update(input_ids=ids, attention_mask=torch.ones_like(ids))
            c = _last_logp(lm, **cond_inputs)
            with pvm.disabled() if pvm is not None else contextlib.nullcontext():
                u = _last_logp(lm, input_ids=torch.tensor([free + generated[:t]]))
            out = gamma * (c - u) + u
            steps.append(out.masked_fill(c < math.log(0.1) + c.max(), float("-inf")))
        rows.append(torch.stack(steps))
    return torch.stack(rows, dim=1)


def test_image_free_prompt_drops_the_image_and_its_boundary_tokens(lm):
    enc, _ = encode(lm, batch())
    ids, mask = ImageFreeStream(lm, PAIConfig(), None).prompt(enc["input_ids"], enc["attention_mask"])
    texts = [lm.tokenizer.decode(row[m.bool()]) for row, m in zip(ids, mask)]
    assert texts[0] == "<|im_start|>user\nColour?<|im_end|>\n<|im_start|>assistant\n"
    assert texts[1] == "<|im_start|>user\nDescribe the picture in detail, please.<|im_end|>\n<|im_start|>assistant\n"
    # Left padded: every row ends at the last column; the shortest row starts with padding.
    assert bool(mask[:, -1].all()) and not bool(mask[0, 0])


@pytest.mark.parametrize(("alpha", "prefill"), [(0.0, "official"), (0.2, "official"), (0.2, "boost")])
def test_guidance_matches_the_reference_formula_per_row_and_step(lm, alpha, prefill):
    enc, _ = encode(lm, batch())
    with pai_active(lm, PAIConfig(alpha=alpha, gamma=GAMMA, prefill=prefill)) as stats:
        sequences, logits = hf_generate(lm)
    assert stats.uncond_passes == NEW_TOKENS  # one image-free forward per step, batched
    if alpha > 0 and prefill == "boost":
        # The conditional half is boosted at every step: recompute it with the boost on and guidance
        # off. The boost acts on the last query row of each forward, so with a KV cache every generated
        # token's keys were computed boosted; a cache-free recomputation matches only at step 0.
        with pai_active(lm, PAIConfig(alpha=alpha, gamma=1.0)):
            expected = reference_logits(lm, sequences, enc["input_ids"].shape[1], GAMMA)
        logits, expected = logits[:1], expected[:1]
    elif alpha > 0:
        # Official schedule (PAI/attention.py:90, CFG.py:32-49): the conditional prefill is NOT
        # boosted when guidance is on, so step 0 is the unboosted model's guided scores.
        expected = reference_logits(lm, sequences, enc["input_ids"].shape[1], GAMMA)
        logits, expected = logits[:1], expected[:1]
    else:
        expected = reference_logits(lm, sequences, enc["input_ids"].shape[1], GAMMA)
    masked = torch.isneginf(expected)
    assert torch.equal(torch.isneginf(logits), masked)
    assert 0 < int(masked.sum()) < masked.numel()
    torch.testing.assert_close(logits[~masked], expected[~masked], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("spec", "prefill_boosted"), [
    ("pai", False), ("pai:gamma=2", False), ("pai:gamma=1", True), ("pai:prefill=boost", True),
    ("pai:gamma=1:prefill=boost", True),
])
def test_boost_schedule_follows_the_official_code(lm, spec, prefill_boosted):
    """PAI/attention.py:90 boosts only when ``not use_cfg``; with guidance on (gamma != 1), use_cfg is
    True during the conditional prefill (llama_modify, attention.py:125) and False after the first
    CFGLogits call (CFG.py:48-49). So: prefill unboosted iff gamma != 1, unless prefill=boost."""
    base_seqs, base_logits = hf_generate(lm)
    (variant,) = resolve_variants([spec])
    config = variant.composition.fixes[0].config
    with pai_active(lm, config) as stats:
        _, logits = hf_generate(lm)
    # hf_generate makes NEW_TOKENS forwards: the prefill (step 0) and NEW_TOKENS - 1 decode steps.
    assert stats.boosted_forwards == NEW_TOKENS - (0 if prefill_boosted else 1)
    if config.gamma == 1:  # no guidance: the first token's scores are base's iff the prefill is unboosted
        assert torch.equal(logits[0], base_logits[0]) is not prefill_boosted
    else:  # guided: compare with the same guidance on an unboosted model (alpha=0)
        with pai_active(lm, PAIConfig(alpha=0.0, gamma=config.gamma)):
            _, unboosted = hf_generate(lm)
        assert torch.equal(logits[0], unboosted[0]) is not prefill_boosted
        assert not torch.equal(logits[1:], unboosted[1:])  # later steps are boosted in both schedules
    assert ("prefill (first token) unboosted" in variant.description) is not prefill_boosted


def test_gamma_above_one_changes_outputs_gamma_one_does_not_guide(lm):
    base_seqs, base_logits = hf_generate(lm)
    results = {}
    for spec in ("pai:alpha=0:gamma=1", "pai:gamma=1", "pai", "pai:alpha=0:gamma=2"):
        (variant,) = resolve_variants([spec])
        with variant.active(lm):
            results[spec] = hf_generate(lm)
    assert torch.equal(results["pai:alpha=0:gamma=1"][1], base_logits)
    assert torch.isfinite(results["pai:gamma=1"][1]).all()  # attention only: no masked tokens
    for spec in ("pai", "pai:alpha=0:gamma=2"):
        assert not torch.equal(results[spec][1], base_logits)
        assert torch.isneginf(results[spec][1]).any()
    # gamma 2 moves the argmax on this model (printed with -s).
    changed = (results["pai:alpha=0:gamma=2"][0] != base_seqs).any(dim=1)
    print(f"\nrows whose greedy tokens changed with gamma=2: {changed.tolist()}")
    assert bool(changed.any())


def test_probes_do_not_see_the_image_free_pass(lm):
    """Same record count and the same step-0 (prefill) masses as base: the extra pass is invisible."""
    probe = AttentionProbe()
    probe.install(lm)
    try:
        base = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probe])
        with pai_active(lm, PAIConfig(alpha=0.0, gamma=GAMMA)) as stats:
            guided = generate(lm, batch(), max_new_tokens=NEW_TOKENS, probes=[probe])
    finally:
        probe.uninstall()
    assert stats.uncond_passes == NEW_TOKENS
    for b, g in zip(base, guided):
        rb, rg = b.probe_records["attention"], g.probe_records["attention"]
        assert len(rg) == g.n_generated * lm.num_layers
        assert [r["step"] for r in rg] == sorted(r["step"] for r in rg)
        step0_b = [r["visual_mass"] for r in rb if r["step"] == 0]
        step0_g = [r["visual_mass"] for r in rg if r["step"] == 0]
        assert step0_g == step0_b
        assert all(r["n_visual"] > 0 for r in rg)  # never a record of the image-free (no image) pass


def test_guidance_runs_with_sampling_and_is_reproducible(lm):
    (variant,) = resolve_variants(["pai"])
    with variant.active(lm):
        first = generate(lm, batch(), max_new_tokens=NEW_TOKENS, temperature=0.7)
        second = generate(lm, batch(), max_new_tokens=NEW_TOKENS, temperature=0.7)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]


def test_guidance_with_a_pvm_branch_keeps_its_visual_memory(tmp_path):
    """The image-free pass runs with the branch off and must not reset the PVM's image memory."""
    from pvm_bench.pvm import attach_pvm

    path = build_tiny_model("qwen3_vl", tmp_path / "m", seed=1, size="small", init_std=0.2)
    pvm_lm = load_model(str(path))
    attach_pvm(pvm_lm, layers=[1, 2], hidden_size=32, seed=0).set_gate(0.5)
    enc, _ = encode(pvm_lm, batch())
    _, base_logits = hf_generate(pvm_lm)
    with pvm_lm.pvm.disabled():
        _, off_logits = hf_generate(pvm_lm)
    assert not torch.equal(base_logits, off_logits)  # the branch matters on this model
    with pai_active(pvm_lm, PAIConfig(alpha=0.0, gamma=GAMMA)):
        sequences, logits = hf_generate(pvm_lm)
    expected = reference_logits(pvm_lm, sequences, enc["input_ids"].shape[1], GAMMA)
    masked = torch.isneginf(expected)
    assert torch.equal(torch.isneginf(logits), masked)
    torch.testing.assert_close(logits[~masked], expected[~masked], rtol=1e-4, atol=1e-4)
