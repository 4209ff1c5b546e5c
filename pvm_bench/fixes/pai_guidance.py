"""PAI's image-free guidance (``PAI/CFG.py``, ``PAI/model_loader.py:253-292``): the second half of PAI.

See :mod:`pvm_bench.fixes.pai` for the formulas, their citations and how the pass is kept
invisible to probes. This module holds the image-free stream (prompt construction, its own KV
cache, positions and log-probs) and the two hooks on the top-level model that run it.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pvm_bench.fixes.base import VisualState
from pvm_bench.instrument import instrument_for
from pvm_bench.models.hooks import cached_length

if TYPE_CHECKING:
    from pvm_bench.fixes.pai_config import PAIConfig
    from pvm_bench.models.loading import LoadedModel

BOUNDARY_TOKEN_ATTRS = (
    "fake_image_token", "global_image_tag", "global_image_token", "start_image_token", "end_image_token",
    "boi_token", "eoi_token", "image_start_token", "image_end_token", "vision_start_token", "vision_end_token",
)
"""Processor/tokenizer attributes naming image boundary tokens (Idefics3/SmolVLM, InternVL, Gemma3, Qwen)."""

_TILE_TAG = re.compile(r"^<row_\d+_col_\d+>$")  # Idefics3/SmolVLM image-split tile tags


def image_free_ids(lm: LoadedModel) -> list[int]:
    """Token ids removed from a prompt to make PAI's image-free prompt.

    The image placeholder and every other placeholder the family declares (image/video pads,
    ``<|vision_start|>``/``<|vision_end|>``, Gemma3's ``<start_of_image>``/``<end_of_image>``),
    plus the processor's image boundary tokens (:data:`BOUNDARY_TOKEN_ATTRS`) and Idefics3's
    ``<row_i_col_j>`` tile tags. The reference removes the image placeholder together with its
    wrappers (``PAI/model_loader.py:254-264``: ``<Img><ImageHere></Img>`` for MiniGPT-4,
    ``<im_start>...<im_end>`` for Shikra; PAI/constants.py:9-25).
    """
    ids = {lm.image_token_id, *lm.suppress_token_ids()}
    tok = lm.tokenizer
    unk = getattr(tok, "unk_token_id", None)
    for owner in (lm.processor, tok):
        for attr in BOUNDARY_TOKEN_ATTRS:
            token = getattr(owner, attr, None)
            token = getattr(token, "content", token)  # AddedToken -> str
            if isinstance(token, str) and token:
                tid = tok.convert_tokens_to_ids(token)
                if isinstance(tid, int) and tid != unk:
                    ids.add(tid)
    for token, tid in (getattr(tok, "get_added_vocab", dict)() or {}).items():
        if _TILE_TAG.match(token):
            ids.add(int(tid))
    return sorted(ids)


class ImageFreeStream:
    """The image-free stream of one generation: its own cache, mask, positions and log-probs."""

    def __init__(self, lm: LoadedModel, config: PAIConfig, state: VisualState | None) -> None:
        self.lm, self.config, self.state = lm, config, state
        self.strip = torch.tensor(image_free_ids(lm), dtype=torch.long)
        self.head = lm.hf_model.get_output_embeddings()
        self.softcap = getattr(lm.text_config, "final_logit_softcapping", None)
        params = inspect.signature(lm.language_model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.cache: Any = None
        self.mask: torch.Tensor | None = None  # [B, T] of the image-free stream
        self.next_pos: torch.Tensor | None = None  # [B]
        self.uncond: torch.Tensor | None = None  # [B, V] log-probs of the latest pass
        self.passes = 0

    def prompt(self, ids: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded image-free ids and mask from the conditional prompt ``ids [B, P]``."""
        keep = ~torch.isin(ids, self.strip.to(ids.device))
        if attention_mask is not None:
            keep &= attention_mask.to(ids.device).bool()
        lengths = keep.sum(1)
        T = max(int(lengths.max()), 1)
        out = ids.new_zeros(ids.shape[0], T)
        mask = torch.zeros_like(out)
        # Left padding: row r's kept tokens go to the last lengths[r] slots, in order.
        slots = torch.arange(T, device=ids.device)[None, :] >= (T - lengths)[:, None]
        out[slots] = ids[keep]
        mask[slots] = 1
        return out, mask

    @torch.no_grad()
    def step(self, ids: torch.Tensor, attention_mask: torch.Tensor | None, prefill: bool) -> None:
        """Run the image-free pass for this step's conditional input ``ids``."""
        from transformers import DynamicCache

        if prefill:
            u_ids, self.mask = self.prompt(ids, attention_mask)
            positions = (self.mask.cumsum(1) - 1).clamp(min=0)
            self.next_pos = positions[:, -1] + 1
            self.cache = DynamicCache(config=self.lm.text_config)
        else:
            assert self.mask is not None and self.next_pos is not None
            u_ids = ids[:, -1:]
            self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], 1)
            positions = self.next_pos[:, None]
            self.next_pos = self.next_pos + 1
        pvm = getattr(self.lm, "pvm", None)
        state = self.state
        assert state is not None, "the image-free pass needs the variant's VisualState"
        state.bypass = True
        try:
            with pvm.disabled() if pvm is not None else contextlib.nullcontext():
                out = self.lm.language_model.forward(
                    input_ids=u_ids, attention_mask=self.mask, position_ids=positions, use_cache=True,
                    **{self.cache_kwarg: self.cache},
                )
        finally:
            state.bypass = False
        logits = self.head(out.last_hidden_state[:, -1:, :])[:, -1].float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        self.uncond = torch.log_softmax(logits, dim=-1)
        self.passes += 1

    def combine(self, logits: torch.Tensor) -> torch.Tensor:
        """PAI/CFG.py:29,53-57 on the last position of ``logits [B, k, V]``; returns float32 logits."""
        assert self.uncond is not None
        cond = torch.log_softmax(logits[:, -1].float(), dim=-1)
        uncond = self.uncond.to(cond.device)
        cutoff = math.log(self.config.cutoff) + cond.max(dim=-1, keepdim=True).values
        out = self.config.gamma * (cond - uncond) + uncond
        out = out.masked_fill(cond < cutoff, float("-inf"))
        new = logits.float().clone()
        new[:, -1] = out
        return new


@contextlib.contextmanager
def guidance_hooks(lm: LoadedModel, config: PAIConfig, state: VisualState) -> Iterator[ImageFreeStream]:
    """Pre-hook (image-free pass) and hook (combine logits) on the top-level model."""
    from pvm_bench.variants import VariantError

    sites = instrument_for(lm).sites
    guide = ImageFreeStream(lm, config, state)
    ready = {"step": False}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        ready["step"] = False
        if state.bypass:
            return
        ids = kwargs.get("input_ids")
        if ids is None and args and torch.is_tensor(args[0]) and not args[0].is_floating_point():
            ids = args[0]
        if ids is None:
            raise VariantError("PAI guidance (gamma > 1) needs input_ids; it cannot run on inputs_embeds")
        guide.step(ids, kwargs.get("attention_mask"), prefill=cached_length(kwargs) == 0)
        ready["step"] = True

    def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        if not ready["step"] or getattr(output, "logits", None) is None:
            return None
        ready["step"] = False
        output.logits = guide.combine(output.logits)
        return output

    handles = [
        sites.hook("model", pre, pre=True, with_kwargs=True),
        sites.hook("model", post, with_kwargs=True),
    ]
    try:
        yield guide
    finally:
        for h in handles:
            h.remove()
