"""Numerical parity with an independent reference forward; zero gate == base; gradients; disabled()."""

from __future__ import annotations

import pytest
import torch

from pvm_bench.models.generation import encode, generate
from pvm_bench.models.loading import load_model
from pvm_bench.pvm import attach_pvm
from pvm_bench.pvm.block import PVMBlock, PVMShape, pvm_block_param_count

from .conftest import mixed_requests
from .reference import patch_reference_layers, reference_pvm


def _randomise(handle, seed: int = 0, gate: float = 0.7) -> None:
    """Non-zero random values in every PVM tensor (norm weights around 1, gate non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in handle.named_parameters():
            if name.endswith("gate_alpha"):
                p.fill_(gate)
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _block_weights(handle, layer: int) -> dict[str, torch.Tensor]:
    prefix = handle.key(layer, "")
    return {k[len(prefix):]: v.detach().clone() for k, v in handle.state_dict().items() if k.startswith(prefix)}


def test_block_matches_reference_and_param_count() -> None:
    shape = PVMShape(hidden_size=48, pvm_hidden_size=32, intermediate_size=40, num_heads=4, num_kv_heads=2,
                     head_dim=8, rms_norm_eps=1e-6)
    block = PVMBlock(shape)
    assert sum(p.numel() for p in block.parameters()) == pvm_block_param_count(shape)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in block.named_parameters():
            p.copy_((1.0 if "norm" in name else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
    W = {k: v.detach() for k, v in block.state_dict().items()}
    h = torch.randn(2, 5, 48, generator=g)
    V = torch.randn(2, 7, 48, generator=g)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    is_image = torch.zeros(2, 5, dtype=torch.bool)
    is_image[0, 1] = True
    ours = block(h, block.memory_kv(V), valid, is_image)
    ref = reference_pvm(h, V, valid, is_image, W, head_dim=8, eps=1e-6)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert torch.all(ours[0, 1] == 0)  # silenced on an image query position
    # padding slots are really ignored: garbage there changes nothing
    V2 = V.clone()
    V2[1, 4:] = 1e3
    torch.testing.assert_close(block(h, block.memory_kv(V2), valid, is_image), ours, atol=0, rtol=0)


def _reference_memory(hf, enc, image_token_id: int) -> dict:
    """V straight from the vision tower (independent of the attach hooks), padded per sample."""
    feats = hf.model.get_image_features(enc["pixel_values"], enc["image_grid_thw"]).pooler_output
    counts = [int(c) for c in (enc["input_ids"] == image_token_id).sum(1)]
    n = max(counts)
    V = torch.zeros(len(counts), n, feats[0].shape[-1])
    valid = torch.zeros(len(counts), n, dtype=torch.bool)
    for b, f in enumerate(feats):  # one image per sample
        assert f.shape[0] == counts[b]
        V[b, : counts[b]] = f
        valid[b, : counts[b]] = True
    return {"V": V, "V_valid": valid, "prompt_image": enc["input_ids"] == image_token_id}


def test_model_logits_match_reference_prefill_and_decode(pvm_tiny_dirs) -> None:
    d = str(pvm_tiny_dirs["qwen3_vl"])
    lm = load_model(d, dtype="float32", device="cpu")
    ref = load_model(d, dtype="float32", device="cpu")
    handle = attach_pvm(lm, layers=[0, 1], hidden_size=32)
    _randomise(handle)
    enc, _ = encode(lm, mixed_requests())
    assert enc["attention_mask"][0, 0] == 0  # left padded
    mem = _reference_memory(ref.hf_model, enc, lm.image_token_id)
    weights = {i: _block_weights(handle, i) for i in handle.layers}
    patch_reference_layers(ref.hf_model, ref.layers, weights, mem, head_dim=lm.text_config.head_dim,
                           eps=lm.text_config.rms_norm_eps)
    kwargs = dict(max_new_tokens=5, do_sample=False, output_logits=True, return_dict_in_generate=True,
                  suppress_tokens=lm.suppress_token_ids(), pad_token_id=lm.tokenizer.pad_token_id)
    with torch.no_grad():
        ours = lm.hf_model.generate(**enc, **kwargs)
        theirs = ref.hf_model.generate(**enc, **kwargs)
        base_out = load_model(d, dtype="float32", device="cpu").hf_model.generate(**enc, **kwargs)
    assert len(ours.logits) == 5
    for step, (a, b) in enumerate(zip(ours.logits, theirs.logits)):  # step 0 = prefill, then cached decode
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"step {step}")
    assert torch.equal(ours.sequences, theirs.sequences)
    # the branch really does something here (otherwise parity would be vacuous)
    assert not torch.allclose(ours.logits[0], base_out.logits[0], atol=1e-3)
    assert not torch.allclose(ours.logits[-1], base_out.logits[-1], atol=1e-3)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl", "llava_onevision"])
def test_zero_gate_is_bit_identical(pvm_tiny_dirs, family: str) -> None:
    d = str(pvm_tiny_dirs[family])
    base = load_model(d, dtype="float32", device="cpu")
    lm = load_model(d, dtype="float32", device="cpu")
    handle = attach_pvm(lm, hidden_size=32 if family != "qwen3_vl" else 64)
    assert all(v == 0.0 for v in handle.gates().values())
    reqs = mixed_requests()
    enc, _ = encode(lm, reqs)
    with torch.no_grad():
        assert torch.equal(lm.hf_model(**enc).logits, base.hf_model(**enc).logits)
    # with autograd on the branch is really computed (gate * x = 0) and must still change nothing
    with torch.enable_grad():
        assert torch.equal(lm.hf_model(**enc).logits.detach(), base.hf_model(**enc).logits.detach())
    ours = [g.token_ids for g in generate(lm, reqs, max_new_tokens=6)]
    assert ours == [g.token_ids for g in generate(base, reqs, max_new_tokens=6)]
    # ... while a non-zero gate changes the logits: the branch is wired in
    handle.set_gate(0.5)
    with torch.no_grad():
        assert not torch.equal(lm.hf_model(**enc).logits, base.hf_model(**enc).logits)
        # the runner's base variant in the same process
        with lm.pvm.disabled():
            assert not lm.pvm.enabled
            assert torch.equal(lm.hf_model(**enc).logits, base.hf_model(**enc).logits)
        assert lm.pvm.enabled
    with lm.pvm.disabled():
        assert [g.token_ids for g in generate(lm, reqs, max_new_tokens=6)] == ours


def test_step0_gradients(pvm_tiny_dirs) -> None:
    """Gate 0 + small random output_expander: the gate gets a gradient at step 0, and after
    one update every PVM tensor (output_expander included) does. The reference double-zero
    init (gate 0 AND output_expander 0) gets no gradient at all: training could never start."""
    lm = load_model(str(pvm_tiny_dirs["qwen3_vl"]), dtype="float32", device="cpu")
    handle = attach_pvm(lm, hidden_size=32)
    enc, _ = encode(lm, mixed_requests())
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)

    def grads() -> dict[str, torch.Tensor]:
        for p in handle.parameters():
            p.grad = None
        lm.hf_model(**enc, labels=labels).loss.backward()
        return {n: p.grad.detach().clone() for n, p in handle.named_parameters()}

    g0 = grads()
    gate_keys = [k for k in g0 if k.endswith("gate_alpha")]
    exp_keys = [k for k in g0 if k.endswith("output_expander.weight")]
    assert all(g0[k].abs().sum() > 0 for k in gate_keys)
    with torch.no_grad():  # one SGD step
        for n, p in handle.named_parameters():
            p -= 0.1 * g0[n]
    g1 = grads()
    assert all(g1[k].abs().sum() > 0 for k in exp_keys + gate_keys)
    assert all(g.abs().sum() > 0 for k, g in g1.items() if "gate_alpha" not in k)

    with torch.no_grad():  # the reference init: both zero
        for block in handle.blocks.values():
            block.gate_alpha.zero_()
            block.output_expander.weight.zero_()
    assert all(g.abs().sum() == 0 for g in grads().values())
