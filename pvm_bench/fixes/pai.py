"""PAI: "Paying More Attention to Image" (Liu, Zheng, Chen; ECCV 2024, arXiv 2407.21771), as published.

Reference: github.com/LALBJ/PAI at commit 9bbd8bd57a0b0923f996197e4bd3e02cc10b8d58 (cited
below as ``PAI/<file>:<line>``). PAI has two halves, both on by default here as in the
paper's commands (``PAI/README.md:60,63,76``: ``--use-attn --alpha 0.2 --use-cfg --gamma 1.1
--start-layer 2 --end-layer 32`` for 32-layer LLaVA-1.5 / MiniGPT-4 / Shikra).

1. Attention boost (``PAI/attention.py:90-94``). In layers ``start_layer <= l < end_layer``
   (``PAI/attention.py:122``), after the mask is added (``:72-75``) and before the softmax,
   only for the LAST query row:

       s[:, :, -1, img] = s[:, :, -1, img] + alpha * |s[:, :, -1, img]|

   Defaults: ``alpha = 0.2`` (``PAI/chair_eval.py:50``, ``PAI/pope_eval.py:50``, README),
   ``start_layer = 2`` (``PAI/chair_eval.py:54``), ``end_layer = None`` = the depth of the
   model (the reference's 32, ``PAI/chair_eval.py:55``, is the full depth of its 32-layer
   models).

2. Image-free guidance (``PAI/CFG.py:28-58``), a logits processor in the reference. With
   ``c = log_softmax(cond logits)`` (``:29``) and ``u = log_softmax(logits of the prompt
   without the image)`` (``:51``):

       out = gamma * (c - u) + u                                   (:54-56)
       out[c < log(0.1) + max(c)] = -inf  (i.e. p_cond < 0.1 * max p_cond)   (:53, :57)

   The unconditional pass runs the prompt with the image removed (``PAI/model_loader.py:
   253-292``: text before and after the image placeholder, concatenated) through the same
   LLM with its own KV cache (``PAI/CFG.py:35-47``: prompt once, then the last generated
   token every step) and with the attention boost off (``use_cfg`` set on the boosted layers
   around the pass, ``PAI/CFG.py:32-33,48-49`` and ``PAI/attention.py:90``). ``gamma = 1``
   returns ``c`` unchanged up to a shift (``PAI/CFG.py:30-31``), i.e. attention-only PAI.
   Default ``gamma = 1.1`` (README commands; the scripts' argparse default is 2,
   ``PAI/chair_eval.py:53``); ``cutoff = 0.1`` (``PAI/CFG.py:53``).

3. Schedule: which forwards get the boost. The boost runs only ``if use_attn and not use_cfg``
   (``PAI/attention.py:90``). ``llama_modify`` sets ``use_cfg = args.use_cfg`` on the boosted
   layers before every generation (``PAI/attention.py:120-128``, ``use_cfg`` at ``:125``, called per batch at
   ``PAI/chair_eval.py:96-105``), and ``CFGLogits.__call__``, which runs after each conditional
   forward, sets ``use_cfg = True`` around the image-free pass and ``False`` after it
   (``PAI/CFG.py:32-33,48-49``). So with guidance on (``gamma != 1``), the conditional
   *prefill* forward -- the one that produces generated token 0 -- runs WITHOUT the boost, and
   every later forward with it. With guidance off (``--use-cfg`` absent: no logits processor,
   ``PAI/chair_eval.py:107-111``; here ``gamma = 1``) ``use_cfg`` stays False and the prefill is
   boosted too. That is the default here (``prefill=official``). ``pai:prefill=boost`` keeps
   pvm-bench's earlier schedule (the prefill boosted whatever ``gamma``); on direct-answer tasks,
   where the first token is the answer, the two are different interventions. (The reference
   with ``--use-cfg --gamma 1`` would never boost -- ``CFG.py:30-31`` returns before resetting
   ``use_cfg`` -- a corner not reproduced: ``gamma = 1`` here means guidance off.)

How it is applied here.
- The boost: a *writer* of the instrument's attention site (:mod:`pvm_bench.instrument.attention`,
  one registered attention function for every probe and fix). For the boosted layers it returns
  ``alpha * |s_last|`` on image keys (GQA folded, no ``[q, keys]`` logits formed), which the site
  passes to sdpa as the additive ``position_bias`` of the last query row (added after the mask);
  readers (the attention probe) see the same bias, so the model output and the probe's
  ``visual_mass`` both see the boost.
- Image-free pass: a forward pre-hook on the top-level model runs, before each conditional
  forward, the language model's own ``forward`` on the image-free tokens (so no hook of the
  language model fires: the visual-state capture, a PVM's memory capture), with a
  ``DynamicCache`` of its own, ``VisualState.bypass`` set (every attention call of that pass
  goes to plain sdpa: no boost, never seen by the attention probe) and any PVM branch
  disabled (the pass is "without the image"). Running it BEFORE the conditional forward keeps
  per-layer probes that hook decoder layers (logit lens) holding the conditional values.
  A forward hook on the top-level model then replaces the last position's logits by ``out``
  (float32). The image-free prompt of a row is its non-padding prompt ids minus every image
  placeholder and the family's image boundary tokens (``<|vision_start|>``, ``<start_of_image>``,
  ``<fake_token_around_image>``, ``<img>``, ...; see
  :func:`pvm_bench.fixes.pai_guidance.image_free_ids`), re-padded on the left. As in the
  reference, the text around the image (separators, newlines) stays.
- Differences from the reference, all forced by running inside ``model.forward`` rather than
  as a custom logits processor: the guidance sees the raw logits, so processors that
  transformers would run before a custom one (repetition penalty from a generation config)
  run after it here; temperature/top-p/top-k run after it in both. The reference runs batch
  size 1 (its unconditional prompts are right padded without a mask); here rows are
  left padded with a mask and their own positions, so results do not depend on the batch.

Zero strength: ``alpha = 0`` and ``gamma = 1`` subscribes a writer that adds nothing (the
site computes plain sdpa) and is bit-identical to ``base`` (a bare ``pai`` is base + PAI, see
:mod:`pvm_bench.variants`); ``gamma = 1`` with ``alpha > 0`` is attention-only PAI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.fixes.base import VisualState, capture_visual, fix_variant
from pvm_bench.fixes.pai_config import PAIConfig
from pvm_bench.fixes.pai_guidance import ImageFreeStream, guidance_hooks
from pvm_bench.instrument import ATTN_NAME, AttentionSiteError, instrument_for
from pvm_bench.variants import VariantError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

SUPPORTED_BACKENDS = ("sdpa",)
"""Text backends PAI runs on: the attention site computes sdpa and adds the bias as sdpa would."""


def _image_key_bias(
    query: torch.Tensor, key: torch.Tensor, scaling: float | None, softcap: float | None, alpha: float,
    img: torch.Tensor,
) -> torch.Tensor:
    """``alpha * |s_last|`` on image keys, 0 elsewhere: ``[B, H, n]`` in the query dtype.

    ``s_last`` is the last query row's logit (after soft-capping, as the mask is added after it).
    """
    B, H, _, D = query.shape
    h_kv, n = key.shape[1], key.shape[2]
    q = query[:, :, -1, :].reshape(B, h_kv, H // h_kv, D)  # GQA: fold query heads onto kv heads
    scale = scaling if scaling is not None else D**-0.5
    s = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, h_kv, g, n]
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    bias = alpha * s.abs().reshape(B, H, n) * img[:, None, :]
    return bias.to(query.dtype)


class _Boost:
    """The attention-site writer: ``alpha * |s_last|`` on image keys of the boosted layers.

    ``boost_prefill`` False: nothing at step 0 (the conditional prefill), as in the official
    schedule with guidance on (module docstring).
    """

    def __init__(self, alphas: list[float], boost_prefill: bool = True) -> None:
        self.alphas = alphas
        self.boost_prefill = boost_prefill
        self.boosted_forwards = 0  # forwards (prefill or decode step) that got the boost

    def attention_bias(self, layer: int, query: torch.Tensor, key: torch.Tensor, scaling: float | None,
                       softcap: float | None, state: VisualState) -> torch.Tensor | None:
        alpha = self.alphas[layer] if layer < len(self.alphas) else 0.0
        if alpha == 0 or state.image_mask is None or (state.step == 0 and not self.boost_prefill):
            return None
        if not state.scratch.get("pai_boosted"):
            state.scratch["pai_boosted"] = True
            self.boosted_forwards += 1
        img = state.key_image_mask(key.shape[2]).to(query.device)
        return _image_key_bias(query, key, scaling, softcap, alpha, img)


@dataclass
class PAIStats:
    """What happened: image-free passes run (0 when ``gamma == 1``), boosted forwards and steps."""

    guide: ImageFreeStream | None = None
    boost: _Boost | None = None

    @property
    def boosted_forwards(self) -> int:
        return self.boost.boosted_forwards if self.boost is not None else 0

    @property
    def uncond_passes(self) -> int:
        return self.guide.passes if self.guide is not None else 0


@contextlib.contextmanager
def pai_active(lm: LoadedModel, config: PAIConfig) -> Iterator[PAIStats]:
    """Run ``lm`` with PAI (boost, and image-free guidance when ``gamma > 1``); restored on exit.

    Raises:
        pvm_bench.variants.VariantError: the text decoder uses a backend other than sdpa (eager/flash
            kernels take no additive logit bias), or the layers have no self-attention site.
    """
    inst = instrument_for(lm)
    site = inst.attention
    # The live backend: sdpa, or the attention site itself (it computes sdpa) when a probe or
    # another fix already switched to it -- as before the instrument, PAI runs under the probe.
    inner = lm.text_config._attn_implementation
    if inner not in (*SUPPORTED_BACKENDS, ATTN_NAME):
        raise VariantError(
            f"PAI needs the text decoder on sdpa (got '{inner}'); load with attn_implementation='sdpa'"
        )
    end = lm.num_layers if config.end_layer is None else min(config.end_layer, lm.num_layers)
    boost = _Boost([config.alpha if config.start_layer <= i < end else 0.0 for i in range(lm.num_layers)],
                   boost_prefill=config.boost_prefill)
    stats = PAIStats(boost=boost)
    with capture_visual(lm) as state:
        try:
            detach = site.subscribe(boost, write=True)
        except AttentionSiteError as exc:
            raise VariantError(f"PAI: {exc}") from None
        try:
            if config.gamma == 1:
                yield stats
            else:
                with guidance_hooks(lm, config, state) as guide:
                    stats.guide = guide
                    yield stats
        finally:
            detach()


def _schedule(c: PAIConfig) -> str:
    if c.alpha == 0:
        return ""
    if c.boost_prefill and c.gamma != 1:
        return "; boost on every forward incl. the prefill (prefill=boost, not the official schedule)"
    if c.boost_prefill:
        return "; boost on every forward incl. the prefill (official with gamma=1)"
    return "; prefill (first token) unboosted, later tokens boosted (official schedule, PAI/attention.py:90)"


def _describe(c: PAIConfig) -> str:
    guidance = (
        f"; image-free guidance gamma={c.gamma} (tokens with p < {c.cutoff}*max p masked)"
        if c.gamma != 1 else "; attention only (gamma=1)"
    )
    return (
        f"PAI (Liu et al. 2024, github.com/LALBJ/PAI): image-key attention logits += alpha*|logit| at layers "
        f"{c.start_layer}..{'end' if c.end_layer is None else c.end_layer - 1}, alpha={c.alpha}{guidance}{_schedule(c)}"
    )


def _effective(lm: LoadedModel, c: PAIConfig) -> dict[str, Any]:
    """The boosted layer range on ``lm`` and whether the prefill is boosted."""
    end = lm.num_layers if c.end_layer is None else min(c.end_layer, lm.num_layers)
    return {"layers": [c.start_layer, end], "prefill_boosted": c.boost_prefill and c.alpha > 0,
            "guidance": c.gamma != 1, "source": "github.com/LALBJ/PAI@9bbd8bd attention.py:90-94, CFG.py:28-58"}


VARIANT = fix_variant("pai", PAIConfig(), _describe, pai_active, _effective)
