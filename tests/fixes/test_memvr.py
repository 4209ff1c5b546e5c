"""MemVR against the reference algorithm (github.com/1zhou-Wang/MemVR, memvr.py and modeling/modeling_qwen.py).

A layer-by-layer re-implementation of the reference decoder loop for one prompt (batch size 1,
as the reference runs): logit lens after every layer, top-10 entropy, first layer with
``start < L < end`` above the threshold, the adapter of layer L+1's MLP built from the visual
tokens exactly as ``memvr.py:245-249`` and ``:86-90`` do (LLaVA recipe: lens with the final
norm, linear retrace, the last image) or as ``modeling_qwen.py:353,756-758,799-800`` do (Qwen
recipe: lens without the final norm, SiLU in the retrace, the first image). Its next-token
logits must equal the fix's prefill logits, and the batched (left-padded) fix must equal the fix
run one row at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pvm_bench.fixes import capture_visual
from pvm_bench.fixes.memvr import MemVRConfig, memvr_active, retrace, topk_entropy
from pvm_bench.models.generation import encode
from pvm_bench.models.loading import load_model
from pvm_bench.probes.images import image_index
from pvm_bench.testing import build_tiny_model

from .test_fixes import _request, batch, hf_generate


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory):
    """4 decoder layers: the window 0 < L < 3 makes layers 1 and 2 trigger candidates (FFN 2 or 3 retraces)."""
    path = build_tiny_model("llava", tmp_path_factory.mktemp("memvr") / "small", seed=3, size="small", init_std=0.2)
    model = load_model(str(path))
    assert model.num_layers == 4
    return model


def test_topk_entropy_is_the_reference_formula():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0)) * 3
    for row in logits:
        top = torch.topk(row, 10).values
        p = torch.softmax(top, -1)
        expected = float(torch.sum(-p * torch.log(p)) / np.log(10))  # memvr.py:213-215
        assert math.isclose(float(topk_entropy(row[None])[0]), expected, rel_tol=1e-6)
    assert math.isclose(float(topk_entropy(torch.zeros(1, 50))[0]), 1.0, rel_tol=1e-6)  # uniform top-10


def test_retrace_is_the_reference_adapter():
    g = torch.Generator().manual_seed(1)
    x, ffn = torch.randn(1, 5, 16, generator=g), torch.randn(1, 5, 16, generator=g)
    z = torch.randn(7, 16, generator=g)
    w_up, w_down = torch.randn(32, 16, generator=g), torch.randn(16, 32, generator=g)
    # memvr.py:248-249 then :88-90
    w1 = (w_up.abs().mean() / z.abs().mean()) * z
    w2 = (w_down.abs().mean() / z.abs().mean()) * z.T
    adapter = torch.matmul(torch.matmul(x, w1.T), w2.T)
    expected = ffn * (1 - 0.12) + (ffn.abs().mean() / adapter.abs().mean()) * adapter * 0.12
    got = retrace(x, ffn, z[None], torch.ones(1, 7, dtype=torch.bool), w_up, w_down, 0.12)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Padded memory rows and padded positions do not change a row's result.
    z_pad = torch.cat([z, torch.zeros(2, 16)])[None]
    mask = torch.tensor([[True] * 7 + [False] * 2])
    x_pad, ffn_pad = torch.cat([torch.ones(1, 3, 16), x], 1), torch.cat([torch.ones(1, 3, 16), ffn], 1)
    positions = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    got_pad = retrace(x_pad, ffn_pad, z_pad, mask, w_up, w_down, 0.12, positions)
    torch.testing.assert_close(got_pad[:, 3:], expected, rtol=1e-5, atol=1e-5)


def reference_prefill_logits(lm, request, config: MemVRConfig) -> tuple[torch.Tensor, int | None]:
    """Next-token logits of one prompt under the reference decoder loop, and the retracing FFN layer."""
    enc, _ = encode(lm, [request])
    captured: dict[str, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(
            lambda m, a, o, i=i: captured.__setitem__(f"out{i}", o[0] if isinstance(o, tuple) else o)
        )
        for i, layer in enumerate(lm.layers)
    ]
    with capture_visual(lm) as state, torch.inference_mode():
        lm.hf_model(**enc)
    for h in handles:
        h.remove()
    run = config.resolve(lm.spec.model_type, lm.num_layers)
    recipe = run.recipe
    # Z: one image's visual tokens, the last (memvr.py:392,458) or the first (modeling_qwen.py:353).
    which = image_index(enc["input_ids"], state.image_mask)[0][state.image_mask[0]]
    z = state.memory[0][which == (int(which.max()) if recipe.image == "last" else 0)]  # [N, H]
    norm, head = lm.language_model.norm, lm.hf_model.get_output_embeddings()
    start, end = run.start, run.end
    chosen = None
    for layer in range(lm.num_layers - 1):  # memvr.py:204-249 / modeling_qwen.py:741-800, batch size 1
        hidden = captured[f"out{layer}"]
        # memvr.py:206-207: norm then lm_head; modeling_qwen.py:757: lm_head on the raw output.
        logits = head(norm(hidden) if recipe.lens_final_norm else hidden)[:, -1, :].float()
        top = torch.topk(logits, 10).values
        p = torch.softmax(top, dim=-1)
        entropy = float(torch.sum(-p[:10] * torch.log(p[:10])) / np.log(10))
        if entropy > config.threshold and start < layer < end:
            chosen = layer + 1
            break
    if chosen is None:
        with torch.inference_mode():
            return lm.hf_model(**enc).logits[0, -1].float(), None
    mlp = lm.layers[chosen].mlp
    w1 = (mlp.up_proj.weight.abs().mean() / z.abs().mean()) * z
    w2 = (mlp.down_proj.weight.abs().mean() / z.abs().mean()) * z.T

    def adapter(module, args, output):
        x = args[0]
        scores = torch.matmul(x, w1.T)
        a = torch.matmul(torch.nn.functional.silu(scores) if recipe.silu else scores, w2.T)  # qwen.py:353 / memvr.py:88
        return output * (1 - run.ratio) + (output.abs().mean() / a.abs().mean()) * a * run.ratio

    handle = mlp.register_forward_hook(adapter)
    try:
        with torch.inference_mode():
            return lm.hf_model(**enc).logits[0, -1].float(), chosen
    finally:
        handle.remove()


@pytest.mark.parametrize("recipe", ["auto", "qwen"])
@pytest.mark.parametrize("threshold", [0.0, 0.6, 0.8, 0.85, 0.9])
def test_prefill_matches_the_reference_loop(lm, threshold, recipe):
    """The LLaVA model with its own recipe (auto -> llava) and with the Qwen recipe forced; a
    two-image prompt checks which image's features are retraced."""
    config = MemVRConfig(threshold=threshold, start=0, end=3, recipe=recipe)
    chosen_layers = []
    for request in [*batch(), _request("Which is brighter?", [(32, 32), (64, 48)])]:
        expected, chosen = reference_prefill_logits(lm, request, config)
        chosen_layers.append(chosen)
        enc, _ = encode(lm, [request])
        with memvr_active(lm, config) as stats, torch.inference_mode():
            got = lm.hf_model(**enc).logits[0, -1].float()
        assert stats.by_layer == ({} if chosen is None else {chosen: 1})
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    print(f"\nthreshold {threshold}: retracing FFN layer per prompt {chosen_layers}")
    if threshold == 0.0:
        assert chosen_layers == [2, 2, 2, 2]  # the first layer above start=0 is 1; its successor retraces


def test_batched_equals_one_row_at_a_time(lm):
    config = MemVRConfig(threshold=0.8, start=0, end=3)
    with memvr_active(lm, config) as stats:
        seqs, logits = hf_generate(lm)
    print(f"\n{stats}")
    assert 0 < stats.retraced < stats.forwards  # some rows and steps retrace, others do not
    assert set(stats.by_layer) == {2, 3}  # and both candidate layers trigger
    from pvm_bench.models.generation import generate

    with memvr_active(lm, config):
        together = generate(lm, batch(), max_new_tokens=8)
        alone = [generate(lm, [r], max_new_tokens=8)[0] for r in batch()]
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_retracing_changes_outputs_and_zero_strength_does_not(lm):
    base_seqs, base_logits = hf_generate(lm)
    for config, changes in ((MemVRConfig(threshold=0.0, start=0, end=3), True), (MemVRConfig(), True),
                            (MemVRConfig(ratio=0.0, threshold=0.0), False), (MemVRConfig(threshold=1.0), False)):
        with memvr_active(lm, config) as stats:
            seqs, logits = hf_generate(lm)
        assert torch.equal(logits, base_logits) is not changes, config
        assert (stats.retraced > 0) is changes


def test_every_supported_family_has_a_recipe():
    from pvm_bench.fixes.memvr_recipes import FAMILY_RECIPES, RECIPES, recipe_for
    from pvm_bench.models.families import FAMILIES

    assert set(FAMILY_RECIPES) == set(FAMILIES)
    assert {f for f, r in FAMILY_RECIPES.items() if r == "qwen"} == {"qwen3_vl", "qwen2_5_vl", "qwen2_vl"}
    assert recipe_for("qwen3_vl") is RECIPES["qwen"] and recipe_for("gemma3") is RECIPES["llava"]
    assert recipe_for("qwen3_vl", "llava") is RECIPES["llava"]  # memvr:recipe=llava overrides
    qwen, llava = RECIPES["qwen"], RECIPES["llava"]
    assert (qwen.silu, qwen.lens_final_norm, qwen.image) == (True, False, "first")
    assert (llava.silu, llava.lens_final_norm, llava.image) == (False, True, "last")
    assert "modeling_qwen.py" in qwen.source and "memvr.py" in llava.source


def test_qwen_recipe_retraces_differently_from_the_llava_one(tmp_path):
    """On a Qwen3-VL (auto -> qwen) the fix equals the Qwen reference loop and differs from the LLaVA recipe."""
    path = build_tiny_model("qwen3_vl", tmp_path / "q", seed=1, size="small", init_std=0.2)
    qlm = load_model(str(path))
    g = torch.Generator().manual_seed(2)
    x, ffn, z = (
        torch.randn(1, 4, 16, generator=g),
        torch.randn(1, 4, 16, generator=g),
        torch.randn(1, 6, 16, generator=g),
    )
    w_up, w_down, mask = (
        torch.randn(32, 16, generator=g),
        torch.randn(16, 32, generator=g),
        torch.ones(1, 6, dtype=torch.bool),
    )
    assert not torch.allclose(retrace(x, ffn, z, mask, w_up, w_down, 0.28, silu=True),
                              retrace(x, ffn, z, mask, w_up, w_down, 0.28))
    request = _request("Colour?", [(32, 32)])
    enc, _ = encode(qlm, [request])
    logits = {}
    for recipe in ("auto", "llava"):
        config = MemVRConfig(threshold=0.0, start=0, end=3, recipe=recipe)
        expected, chosen = reference_prefill_logits(qlm, request, config)
        with memvr_active(qlm, config) as stats, torch.inference_mode():
            logits[recipe] = qlm.hf_model(**enc).logits[0, -1].float()
        assert chosen is not None and stats.by_layer == {chosen: 1}
        torch.testing.assert_close(logits[recipe], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(logits["auto"], logits["llava"], rtol=1e-4, atol=1e-4)
