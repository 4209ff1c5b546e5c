"""PAI and MemVR on tiny models of several families: zero strength is bit-identical to base,
full strength changes the logits, and the image-free prompt keeps the text around the image."""

from __future__ import annotations

import pytest
import torch

from pvm_bench.fixes.memvr import MemVRConfig, memvr_active
from pvm_bench.fixes.pai import PAIConfig
from pvm_bench.fixes.pai_guidance import ImageFreeStream
from pvm_bench.models.generation import encode
from pvm_bench.models.loading import load_model
from pvm_bench.testing import build_tiny_model
from pvm_bench.variants import resolve_variants

from .test_fixes import batch, hf_generate

FAMILIES = ["qwen2_5_vl", "llava_onevision", "idefics3", "smolvlm", "internvl", "gemma3"]
ZERO = ["pai:alpha=0:gamma=1", "memvr:ratio=0:threshold=0", "memvr:threshold=1:start=0:end=3"]


@pytest.fixture(scope="module", params=FAMILIES)
def family_lm(request, tmp_path_factory: pytest.TempPathFactory):
    path = build_tiny_model(
        request.param, tmp_path_factory.mktemp(request.param) / "m", seed=1, size="small", init_std=0.2
    )
    return request.param, load_model(str(path))


def test_zero_strength_bit_identical_and_full_strength_changes(family_lm):
    family, lm = family_lm
    base_seqs, base_logits = hf_generate(lm)
    for spec in ZERO:
        (variant,) = resolve_variants([spec])
        with variant.active(lm):
            seqs, logits = hf_generate(lm)
        assert torch.equal(seqs, base_seqs), (family, spec)
        assert torch.equal(logits, base_logits), (family, spec)
    with resolve_variants(["pai"])[0].active(lm):
        _, pai_logits = hf_generate(lm)
    assert not torch.equal(pai_logits, base_logits)
    with memvr_active(lm, MemVRConfig(threshold=0.0, start=0, end=3)) as stats:
        _, memvr_logits = hf_generate(lm)
    if family == "gemma3":
        # The tiny Gemma3's projector is zero-initialised: all-zero visual tokens, nothing to retrace.
        assert stats.retraced == 0 and torch.equal(memvr_logits, base_logits)
    else:
        assert stats.retraced == stats.forwards > 0
        assert not torch.equal(memvr_logits, base_logits)


def test_image_free_prompt_has_no_image_tokens_and_keeps_the_question(family_lm):
    family, lm = family_lm
    enc, _ = encode(lm, batch())
    guide = ImageFreeStream(lm, PAIConfig(), None)
    ids, mask = guide.prompt(enc["input_ids"], enc["attention_mask"])
    assert not torch.isin(ids[mask.bool()], guide.strip).any()
    assert not (ids[mask.bool()] == lm.image_token_id).any()
    text = lm.tokenizer.decode(ids[1][mask[1].bool()])
    assert "Describe the picture in detail, please." in text, (family, text)
    # No image placeholder or boundary marker survives (<image>, <img>, <global-img>, <start_of_image>, ...).
    assert "img" not in text and "image" not in text and "vision" not in text, (family, text)
    # Only image tokens and their boundary tokens were removed: the count matches.
    removed = int(enc["attention_mask"][1].sum()) - int(mask[1].sum())
    assert removed == int(torch.isin(enc["input_ids"][1], guide.strip).sum()) > 0
