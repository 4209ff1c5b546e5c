"""Exactness and invariants of the streaming attention probe on tiny models of every family."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GenerationConfig

from pvm_bench.models.generation import encode, eos_ids, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import RECORD_KEYS, AttentionProbe, find_attention_modules
from pvm_bench.probes.base import ProbeError
from pvm_bench.results import compact_frame

from .conftest import FAMILIES, batch1, batch3

NEW_TOKENS = 8


def require_encodable(lm, requests) -> None:
    """xfail (not fail) when the shared batch encoder cannot build this batch for the family.

    That is a limitation of ``pvm_bench.models.generation.encode`` (e.g. processors that want
    per-sample image lists), not of the probe; the test runs as soon as encoding works.
    """
    try:
        encode(lm, requests)
    except ValueError as exc:
        pytest.xfail(f"{lm.spec.name}: generation.encode cannot batch these prompts: {str(exc)[:160]}")


def eager_reference(lm_eager, requests, max_new_tokens: int):
    """Sequences and per (row, step, layer) visual mass from eager ``output_attentions``.

    Reference definition: mean over heads of the sum over image keys of the last query row.
    """
    enc, _ = encode(lm_eager, requests)
    eos = eos_ids(lm_eager)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=eos or None,
        pad_token_id=lm_eager.tokenizer.pad_token_id,
        suppress_tokens=lm_eager.suppress_token_ids() or None,
    )
    with torch.inference_mode():
        out = lm_eager.hf_model.generate(
            **enc, generation_config=config, output_attentions=True, return_dict_in_generate=True
        )
    image_mask = (enc["input_ids"] == lm_eager.image_token_id).float()
    P = image_mask.shape[1]
    masses, visible, visible_img = [], [], []  # [step][layer] -> [B]
    for step, step_attn in enumerate(out.attentions):
        # Keys of a call are the last n absolute positions (sliding-window caches keep fewer).
        total = P + step
        img = torch.zeros(image_mask.shape[0], total + 1)
        img[:, :P] = image_mask
        per_layer, n_vis, n_img = [], [], []
        for attn in step_attn:
            n = attn.shape[-1]
            last, keys_img = attn[:, :, -1, :].float(), img[:, total - n : total]
            per_layer.append((last * keys_img[:, None, :]).sum(-1).mean(1))
            seen = (last > 0).any(dim=1).float()  # masked keys get exactly 0 in eager softmax
            n_vis.append(seen.sum(-1))
            n_img.append((seen * keys_img).sum(-1))
        masses.append(torch.stack(per_layer))
        visible.append(torch.stack(n_vis))
        visible_img.append(torch.stack(n_img))
    refs = {"visual_mass": masses, "n_keys": visible, "n_visual": visible_img}
    return out.sequences[:, P:].tolist(), {k: torch.stack(v).numpy() for k, v in refs.items()}  # [S, L, B]


@pytest.mark.parametrize("family", FAMILIES)
def test_visual_mass_matches_eager(family, tiny_dirs):
    lm = load_model(str(tiny_dirs[family]))
    lm_eager = load_model(str(tiny_dirs[family]), attn_implementation="eager")
    probe = AttentionProbe(per_head=True)
    for requests in (batch1(), batch3()):
        require_encodable(lm, requests)
        plain = generate(lm, requests, max_new_tokens=NEW_TOKENS)
        probe.install(lm)
        try:
            probed = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[probe])
        finally:
            probe.uninstall()
        assert [g.token_ids for g in probed] == [g.token_ids for g in plain], "probe changed the tokens"
        ref_tokens, ref = eager_reference(lm_eager, requests, NEW_TOKENS)
        image_counts = (encode(lm, requests)[0]["input_ids"] == lm.image_token_id).sum(-1).tolist()
        for row, gen in enumerate(probed):
            assert ref_tokens[row][: gen.n_generated] == gen.token_ids
            records = gen.probe_records["attention"]
            assert len(records) == gen.n_generated * lm.num_layers
            for rec in records:
                assert set(RECORD_KEYS) <= rec.keys()
                at = (rec["step"], rec["layer"], row)
                expected = ref["visual_mass"][at]
                assert abs(rec["visual_mass"] - expected) < 1e-5, (family, row, rec, expected)
                assert rec["visual_mass"] == pytest.approx(np.mean(rec["visual_mass_heads"]), abs=1e-6)
                assert rec["n_keys"] == ref["n_keys"][at] and rec["n_visual"] == ref["n_visual"][at]
                assert rec["n_visual"] <= image_counts[row]
                assert 0.0 <= rec["sink_mass"] <= 1.0 + 1e-6
        # n_keys excludes left padding: at most the real prompt length plus the tokens so far
        # (fewer on sliding-window layers), and exactly that on the last layer's full attention.
        real = encode(lm, requests)[0]["attention_mask"].sum(-1).tolist()
        for row, gen in enumerate(probed):
            for rec in gen.probe_records["attention"]:
                assert rec["n_keys"] <= real[row] + rec["step"]


@pytest.mark.parametrize("family", FAMILIES)
def test_uniform_attention_gives_image_fraction(family, tiny_dirs):
    lm = load_model(str(tiny_dirs[family]))
    for module in find_attention_modules(lm):
        # Zero queries -> all scores 0 -> uniform softmax over the keys the mask allows.
        module.q_proj.weight.data.zero_()
        if module.q_proj.bias is not None:
            module.q_proj.bias.data.zero_()
    require_encodable(lm, batch3())
    probe = AttentionProbe()
    probe.install(lm)
    try:
        gens = generate(lm, batch3(), max_new_tokens=4, probes=[probe])
    finally:
        probe.uninstall()
    for gen in gens:
        for rec in gen.probe_records["attention"]:
            assert rec["visual_mass"] == pytest.approx(rec["n_visual"] / rec["n_keys"], abs=1e-6)
            if rec["n_visual"]:
                assert rec["visual_mass_norm"] == pytest.approx(1.0, abs=1e-5)
            else:  # a sliding window that no longer reaches the image: no norm to speak of
                assert math.isnan(rec["visual_mass_norm"])


def test_install_touches_only_text_attention(tiny_dirs):
    lm = load_model(str(tiny_dirs["qwen3_vl"]))
    text_before = lm.text_config._attn_implementation
    vision_before = lm.config.vision_config._attn_implementation
    probe = AttentionProbe()
    probe.install(lm)
    assert lm.text_config._attn_implementation != text_before
    assert lm.config.vision_config._attn_implementation == vision_before
    gens = generate(lm, batch1(), max_new_tokens=3, probes=[probe])
    # Exactly one record per (step, decoder layer): the vision tower's calls are never recorded.
    assert probe._calls == gens[0].n_generated * lm.num_layers
    with pytest.raises(ProbeError):
        probe.install(lm)
    probe.uninstall()
    assert lm.text_config._attn_implementation == text_before


def test_unprobeable_family_names_why():
    class Stub:
        layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

        class spec:
            name = "NoAttn"

    with pytest.raises(ProbeError, match="NoAttn.*self_attn"):
        find_attention_modules(Stub())


def test_parquet_is_compact(tmp_path):
    rng = np.random.default_rng(0)
    steps, layers = 1000, 36
    vm = rng.random(steps * layers)
    records = [
        {
            "step": s, "layer": layer, "visual_mass": float(vm[s * layers + layer]),
            "visual_mass_norm": float(vm[s * layers + layer] * 3.1), "sink_mass": float(rng.random()),
            "n_keys": 700 + s, "n_visual": 256,
        }
        for s in range(steps) for layer in range(layers)
    ]
    frame = compact_frame(pd.DataFrame.from_records(records))  # what the runner writes attention.parquet with
    assert str(frame["step"].dtype) == "int32" and str(frame["layer"].dtype) == "int16"
    assert str(frame["visual_mass"].dtype) == "float32" and str(frame["n_keys"].dtype) == "int32"
    path = tmp_path / "attention.parquet"
    frame.to_parquet(path, index=False)
    size = path.stat().st_size
    assert size < 3 * 2**20, size


def test_pvm_variant_is_probed_exactly(tiny_dirs):
    """A PVM branch adds cross-attention modules to some layers; only self-attention is probed."""
    from pvm_bench.pvm.attach import attach_pvm

    lm = load_model(str(tiny_dirs["qwen3_vl"]))
    lm_eager = load_model(str(tiny_dirs["qwen3_vl"]), attn_implementation="eager")
    for model in (lm, lm_eager):  # same seed -> same branch weights; a live gate changes outputs
        attach_pvm(model, layers=[1], hidden_size=32, seed=3, gate=0.5)
    requests = batch3()
    plain = generate(lm, requests, max_new_tokens=NEW_TOKENS)
    probe = AttentionProbe()
    probe.install(lm)
    try:
        probed = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[probe])
        assert probe._calls == max(g.n_generated for g in probed) * lm.num_layers
    finally:
        probe.uninstall()
    assert [g.token_ids for g in probed] == [g.token_ids for g in plain]
    ref_tokens, ref = eager_reference(lm_eager, requests, NEW_TOKENS)
    for row, gen in enumerate(probed):
        assert ref_tokens[row][: gen.n_generated] == gen.token_ids
        for rec in gen.probe_records["attention"]:
            expected = ref["visual_mass"][rec["step"], rec["layer"], row]
            assert abs(rec["visual_mass"] - expected) < 1e-5


def test_softcap_gqa_and_mask_against_manual():
    """No tiny VLM soft-caps attention logits, so drive the streaming function directly."""
    from types import SimpleNamespace

    from pvm_bench.instrument.attention import plain_attention
    from pvm_bench.instrument.state import ForwardState
    from pvm_bench.probes.base import BatchContext

    torch.manual_seed(0)
    B, H, H_kv, P, D, softcap, scale = 2, 4, 2, 6, 8, 2.0, 0.3
    module = torch.nn.Linear(1, 1)  # stands in for a decoder layer's self_attn
    module.num_key_value_groups = H // H_kv
    q, k, v = torch.randn(B, H, P, D) * 3, torch.randn(B, H_kv, P, D) * 3, torch.randn(B, H_kv, P, D)
    attention_mask = torch.ones(B, P, dtype=torch.long)
    attention_mask[1, :2] = 0  # left padding on row 1
    allowed = torch.ones(P, P, dtype=torch.bool).tril()[None, None] & attention_mask.bool()[:, None, None, :]
    image_mask = torch.zeros(B, P, dtype=torch.bool)
    image_mask[:, 2:4] = True

    probe = AttentionProbe()
    probe._lm, probe._n_layers = SimpleNamespace(device=torch.device("cpu")), 1
    state = ForwardState(image_mask=image_mask, past=0, q_len=P, step=0)  # a prefill forward
    probe.begin_batch(BatchContext(torch.zeros(B, P, dtype=torch.long), attention_mask, image_mask, 1))
    # What the attention site does for a reader: the plain output, then the reader sees the call.
    out, _ = plain_attention(module, q, k, v, allowed, scaling=scale, softcap=softcap)
    probe.observe_attention(0, q, k, allowed, scale, softcap, None, state)
    records = probe.end_batch([1, 1])

    kr, vr = k.repeat_interleave(H // H_kv, 1), v.repeat_interleave(H // H_kv, 1)
    scores = torch.tanh(q @ kr.transpose(-1, -2) * scale / softcap) * softcap
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    expected_out = (probs @ vr).transpose(1, 2)
    assert torch.allclose(out[0], expected_out[0], atol=1e-5)
    assert torch.allclose(out[1, 2:], expected_out[1, 2:], atol=1e-5)  # padded query rows are don't-care
    for row in range(B):
        (rec,) = records[row]
        assert rec["visual_mass"] == pytest.approx(probs[row, :, -1, 2:4].sum(-1).mean().item(), abs=1e-6)
        assert rec["n_keys"] == int(attention_mask[row].sum()) and rec["n_visual"] == 2
