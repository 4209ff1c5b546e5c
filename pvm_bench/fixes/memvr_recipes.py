"""MemVR's official recipes, and which one each supported family follows (data, not code).

The reference (github.com/1zhou-Wang/MemVR at commit de2e3cfc9a09eb73c9efcc6fffe27b1f2e5922cb,
cited as ``MemVR/<file>:<line>``) ships two implementations of the retracing, with their settings:

``llava`` -- LLaVA-1.5-7B (a LLaMA decoder, 32 layers), ``MemVR/memvr.py``:
  * logit lens = final norm + ``lm_head`` (``memvr.py:206-207``);
  * retrace ``a = (x (c1 Z)^T) (c2 Z)``, linear (``memvr.py:88``), ``c1 = mean|W_up| / mean|Z|``,
    ``c2 = mean|W_down| / mean|Z|`` (``memvr.py:248-249``);
  * ``Z`` = ``cur_image_features`` after the loop over images (``memvr.py:392,458``): the LAST
    image of the (last) prompt;
  * ``start = 5, end = 16, ratio = 0.12, threshold = 0.75`` (``eval_scripts/llava/mme.sh:11-15``,
    ``README.md:104-107``).

``qwen`` -- Qwen-VL-Chat (a Qwen-7B decoder, 32 layers: ``eval/qwen_model_vqa.py:56``),
``MemVR/modeling/modeling_qwen.py``:
  * logit lens = ``lm_head`` on the raw layer output, WITHOUT the final norm ``ln_f``
    (``modeling_qwen.py:756-758``; ``ln_f`` only after the loop, ``:822``);
  * retrace ``a = SiLU(x (c1 Z)^T) (c2 Z)`` (``modeling_qwen.py:353``), ``c1 = mean|w1| / mean|Z|``
    with ``w1`` the un-gated projection (= transformers' ``up_proj``; ``a1 * silu(a2)``,
    ``:342-344``) and ``c2 = mean|c_proj| / mean|Z|`` (``:799-800``). The SiLU makes ``c1`` matter
    (it no longer cancels in the rescaling, ``:354``);
  * ``Z = adpt_w1[0]``: the FIRST image of ``vision_token`` (``:353``, set at ``:589``); the code
    is single-image (with two images the ``matmul`` at ``:353`` broadcasts to a batch of 2). Here
    ``mean|Z|`` in ``c1``/``c2`` is taken over that image (the reference's all-image mean is the
    same for the single-image inputs it runs);
  * ``start = 9, end = 16, ratio = 0.28, threshold = 0.75`` (``eval_scripts/qwen/mme.sh:10-15``,
    ``eval_scripts/qwen/mmvet.sh:12-17``).
  Note: the shipped Qwen scripts leave ``--vision-retracing`` at its default ``"default"``
  (``eval/qwen_model_vqa.py:54,120``), under which ``modeling_qwen.py:794`` never installs the
  retrace; we follow the retrace the code implements for ``"adapt"`` (the method of the paper).

Family choice (:data:`FAMILY_RECIPES`): the Qwen-VL line (Qwen2-VL, Qwen2.5-VL, Qwen3-VL: the
successors of Qwen-VL-Chat, and pvm-bench's organism, a tiny Qwen3-VL) follows ``qwen``; every
LLaVA-style family (a projector placing image features into a decoder's ``inputs_embeds``:
LLaVA, LLaVA-OneVision, Idefics3, SmolVLM, InternVL, Gemma3) follows ``llava``. There is no
official recipe for those other than the two; the choice is ours and is recorded in run.json.

Depth (ours): both recipes were set on 32-layer decoders. For depth ``D`` the window is scaled
``start = floor(s * D / 32)``, ``end = ceil(e * D / 32)`` (never narrower than the 32-layer
proportion): ``qwen`` at 36 layers (Qwen3-VL-4B/8B) -> 10..18, at 28 (Qwen2.5-VL-7B) -> 7..14;
``llava`` at 36 -> 5..18; a window scaled to nothing is widened to one trigger layer (``qwen`` at 4
layers -> 1..3). ``memvr:start=..:end=..`` set absolute layers instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

REFERENCE = "github.com/1zhou-Wang/MemVR@de2e3cf"


@dataclass(frozen=True)
class MemVRRecipe:
    """One official MemVR recipe (see the module docstring for each value's source)."""

    name: str
    start: int
    end: int
    ratio: float
    threshold: float
    silu: bool  # SiLU on the retrace scores x (c1 Z)^T
    lens_final_norm: bool  # the logit lens applies the final norm before lm_head
    image: Literal["first", "last"]  # which image's features Z are
    depth: int  # decoder depth the settings were tuned on
    source: str

    def window(self, num_layers: int) -> tuple[int, int]:
        """``(start, end)`` scaled to ``num_layers``, with at least one layer in between (module docstring)."""
        start = math.floor(self.start * num_layers / self.depth)
        return start, max(math.ceil(self.end * num_layers / self.depth), start + 2)


RECIPES: dict[str, MemVRRecipe] = {
    "llava": MemVRRecipe(
        "llava",
        start=5,
        end=16,
        ratio=0.12,
        threshold=0.75,
        silu=False,
        lens_final_norm=True,
        image="last",
        depth=32,
        source=f"{REFERENCE} memvr.py:88,206-207,248-249,392,458; eval_scripts/llava/mme.sh:11-15",
    ),
    "qwen": MemVRRecipe(
        "qwen",
        start=9,
        end=16,
        ratio=0.28,
        threshold=0.75,
        silu=True,
        lens_final_norm=False,
        image="first",
        depth=32,
        source=f"{REFERENCE} modeling/modeling_qwen.py:353,589,756-758,799-800; eval_scripts/qwen/mme.sh:10-15",
    ),
}
"""Recipe name -> :class:`MemVRRecipe`."""

FAMILY_RECIPES: dict[str, str] = {
    "qwen3_vl": "qwen",
    "qwen2_5_vl": "qwen",
    "qwen2_vl": "qwen",
    "llava": "llava",
    "llava_onevision": "llava",
    "idefics3": "llava",
    "smolvlm": "llava",
    "internvl": "llava",
    "gemma3": "llava",
}
"""``config.model_type`` -> the recipe it follows (module docstring: why)."""

DEFAULT_RECIPE = "llava"
"""For a family not in the table (a model the family table learns later): the LLaVA recipe."""


def recipe_for(model_type: str, requested: str = "auto") -> MemVRRecipe:
    """The recipe for a model of ``model_type``: ``requested`` unless ``"auto"``, else the family's."""
    name = requested if requested != "auto" else FAMILY_RECIPES.get(model_type, DEFAULT_RECIPE)
    return RECIPES[name]
