"""Which image each image-placeholder position belongs to (for per-image visual mass).

Every family in the model table lays an image out as one contiguous run of image-placeholder
tokens, separated from the next image by at least one text/marker token (Qwen2/2.5/3-VL
``<|vision_end|>..<|vision_start|>``, LLaVA(-OneVision) a newline, InternVL ``</img>..<img>``,
Gemma3 ``<end_of_image>..<start_of_image>``) -- except the tiled layouts of Idefics3/SmolVLM,
where one image is several runs (one per tile, ``<row_i_col_j>`` between them) ending with the
global view, which follows a ``<global-img>`` token. So: every run is one image, unless the
tokenizer knows ``<global-img>``; then an image is the runs up to and including the run that a
``<global-img>`` token precedes. (Checked on the tiny models of all nine families with a
2-image prompt: tests/probes/test_per_image.py.)
"""

from __future__ import annotations

from typing import Any

import torch

GLOBAL_TILE_MARKER = "<global-img>"


def closing_marker_id(tokenizer: Any) -> int | None:
    """The id of ``<global-img>`` when the tokenizer has it (tiled layouts), else None."""
    if tokenizer is None:
        return None
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    value = vocab.get(GLOBAL_TILE_MARKER)
    return int(value) if value is not None else None


def image_index(input_ids: torch.Tensor, image_mask: torch.Tensor, closing_id: int | None = None) -> torch.Tensor:
    """``[B, P]`` long: the 0-based index (in prompt order) of the image each position belongs
    to, -1 at non-image positions (see the module docstring for the rule)."""
    ids = input_ids.detach().cpu()
    mask = image_mask.detach().cpu().bool()
    out = torch.full(mask.shape, -1, dtype=torch.long)
    for b in range(mask.shape[0]):
        current, seen_marker, prev = -1, False, False
        open_image = False  # tiled layout: runs join the current image until its global view
        for p, is_img in enumerate(mask[b].tolist()):
            if is_img and not prev:  # a run starts
                if closing_id is None or not open_image:
                    current += 1
                open_image = closing_id is not None and not seen_marker
                seen_marker = False
            if is_img:
                out[b, p] = current
            elif closing_id is not None and int(ids[b, p]) == closing_id:
                seen_marker = True
            prev = is_img
    return out


def n_images(index: torch.Tensor) -> list[int]:
    """Images per row of an :func:`image_index` result."""
    return [int(row.max()) + 1 if row.numel() else 0 for row in index]
