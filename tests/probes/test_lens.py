"""Lens probe (entropy, margin, per-layer logit lens) and the probe registry."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GenerationConfig

from pvm_bench.models.generation import encode, eos_ids, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.probes.lens import LAYER_KEYS, STEP_KEYS, LensProbe
from pvm_bench.probes.registry import PROBES, UnknownProbeError, make_probes

from .conftest import batch1


def test_entropy_and_margin_match_scores(tiny_dirs):
    lm = load_model(str(tiny_dirs["qwen3_vl"]))
    probe = LensProbe()
    probe.install(lm)
    try:
        gen = generate(lm, batch1(), max_new_tokens=6, probes=[probe])[0]
    finally:
        probe.uninstall()
    records = gen.probe_records["lens"]
    assert [r["step"] for r in records] == list(range(gen.n_generated))
    # Reference: the scores transformers returns (the same processed scores the probe observed).
    enc, _ = encode(lm, batch1())
    config = GenerationConfig(
        max_new_tokens=6, do_sample=False, eos_token_id=eos_ids(lm), pad_token_id=lm.tokenizer.pad_token_id,
        suppress_tokens=lm.suppress_token_ids() or None,
    )
    with torch.inference_mode():
        out = lm.hf_model.generate(**enc, generation_config=config, output_scores=True, return_dict_in_generate=True)
    for rec, scores in zip(records, out.scores):
        p = torch.softmax(scores[0].float(), -1)
        entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        top = p.topk(2).values
        assert set(STEP_KEYS) <= rec.keys()
        assert rec["entropy"] == pytest.approx(entropy, abs=1e-4)
        assert rec["margin"] == pytest.approx((top[0] - top[1]).item(), abs=1e-5)
        assert 0.0 <= rec["entropy"] <= math.log(p.numel()) + 1e-5


def test_per_layer_lens_last_layer_is_final(tiny_dirs):
    lm = load_model(str(tiny_dirs["qwen2_5_vl"]))
    probes = [LensProbe(per_layer=True), AttentionProbe()]  # both at once, as the runner does
    for p in probes:
        p.install(lm)
    try:
        gen = generate(lm, batch1(), max_new_tokens=5, probes=probes)[0]
    finally:
        for p in probes:
            p.uninstall()
    records = gen.probe_records["lens"]
    assert len(records) == gen.n_generated * lm.num_layers
    last = lm.num_layers - 1
    for rec in records:
        assert set(LAYER_KEYS) <= rec.keys() and rec["lens_kl"] >= -1e-5
        if rec["layer"] == last:
            # final norm + lm_head on the last layer's output is exactly the model's own head.
            assert rec["lens_kl"] == pytest.approx(0.0, abs=1e-4)
            assert rec["lens_top1_agree"]
            assert 0 <= rec["lens_first_agree_layer"] <= last
    assert not lm.layers[0]._forward_hooks  # uninstall removed the hooks


def test_registry():
    probes = make_probes(["attention", "lens", "attention"], per_head=True)
    assert [p.name for p in probes] == ["attention", "lens"]
    assert probes[0].per_head
    assert {"attention", "lens"} <= PROBES.keys()
    with pytest.raises(UnknownProbeError, match="unknown probe 'nope'; see --probes"):
        make_probes(["attention", "nope"], per_head=False)
