"""Per-image visual mass (``--per-image``, issue 15 item 2) against eager attention, all families.

On a left-padded batch with a 2-image row and a 1-image row, ``visual_mass_img{i}`` equals the
eager ``output_attentions`` mass of the last query row summed over image i's keys (mean over
heads) within 1e-5, the per-image columns add up to ``visual_mass``, and the image segmentation
finds 2 and 1 images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from pvm_bench.models.generation import encode, eos_ids, generate
from pvm_bench.models.loading import load_model
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.probes.images import closing_marker_id, image_index, n_images

from .conftest import FAMILIES, image, request

NEW_TOKENS = 6


def _requests():
    return [
        request("Which of the two is red?", [image(64, 48, (200, 30, 30)), image(32, 32, (20, 30, 200))]),
        request("Colour?", [image(48, 48, (10, 200, 10))]),
    ]


def _eager_per_image(lm_eager, requests):
    """[S, L, B, M] eager mass per image, and the image index used."""
    enc, _ = encode(lm_eager, requests)
    config = GenerationConfig(
        max_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, eos_token_id=eos_ids(lm_eager) or None,
        pad_token_id=lm_eager.tokenizer.pad_token_id, suppress_tokens=lm_eager.suppress_token_ids() or None,
    )
    with torch.inference_mode():
        out = lm_eager.hf_model.generate(**enc, generation_config=config, output_attentions=True,
                                         return_dict_in_generate=True)
    ids = enc["input_ids"]
    idx = image_index(ids, ids == lm_eager.image_token_id, closing_marker_id(lm_eager.tokenizer))
    M = max(n_images(idx))
    P = ids.shape[1]
    steps = []
    for step, step_attn in enumerate(out.attentions):
        total = P + step
        onehot = torch.zeros(ids.shape[0], total + 1, M)
        for m in range(M):
            onehot[:, :P, m] = (idx == m).float()
        layers = []
        for attn in step_attn:
            n = attn.shape[-1]
            last = attn[:, :, -1, :].float().mean(1)  # [B, n]
            layers.append(torch.einsum("bn,bnm->bm", last, onehot[:, total - n : total]))
        steps.append(torch.stack(layers))
    return torch.stack(steps).numpy(), idx


@pytest.mark.parametrize("family", FAMILIES)
def test_per_image_mass_matches_eager(family, tiny_dirs):
    lm = load_model(str(tiny_dirs[family]))
    lm_eager = load_model(str(tiny_dirs[family]), attn_implementation="eager")
    requests = _requests()
    ref, idx = _eager_per_image(lm_eager, requests)
    assert n_images(idx) == [2, 1], (family, n_images(idx))
    probe = AttentionProbe(per_image=True)
    probe.install(lm)
    try:
        gens = generate(lm, requests, max_new_tokens=NEW_TOKENS, probes=[probe])
    finally:
        probe.uninstall()
    worst = 0.0
    for row, gen in enumerate(gens):
        n_img = 2 if row == 0 else 1
        for rec in gen.probe_records["attention"]:
            cols = [rec[f"visual_mass_img{i}"] for i in range(n_img)]
            assert f"visual_mass_img{n_img}" not in rec
            for i, value in enumerate(cols):
                worst = max(worst, abs(value - ref[rec["step"], rec["layer"], row, i]))
            assert abs(sum(cols) - rec["visual_mass"]) < 1e-6
    assert worst < 1e-5, (family, worst)
    # both images of row 0 get some attention somewhere (the split is not all-on-one)
    first = np.array([r["visual_mass_img0"] for r in gens[0].probe_records["attention"]])
    second = np.array([r["visual_mass_img1"] for r in gens[0].probe_records["attention"]])
    assert first.max() > 0 and second.max() > 0


def test_image_index_tiled_layout():
    ids = torch.tensor([[5, 1, 1, 5, 1, 9, 1, 1, 5, 1, 5]])
    mask = ids == 1
    assert image_index(ids, mask).tolist() == [[-1, 0, 0, -1, 1, -1, 2, 2, -1, 3, -1]]
    # 9 = <global-img>: tiles then the global view make one image
    assert image_index(ids, mask, closing_id=9).tolist() == [[-1, 0, 0, -1, 0, -1, 0, 0, -1, 1, -1]]
