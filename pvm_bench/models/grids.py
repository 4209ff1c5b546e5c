"""Where an image's placeholder tokens sit on the image: per-family patch-grid rules (data for the family table).

A rule turns one image's run of placeholder tokens (``n`` tokens, in prompt order) into
:class:`GridView` s: consecutive token ranges laid out row-major as ``rows x cols`` cells. A view
with ``whole=True`` covers the whole image (the one a heat map is drawn over); tiles of multi-crop
families cover parts of it. Each :class:`~pvm_bench.models.families.FamilySpec` names its rule in
``image_grid``; :func:`image_views` applies it and falls back to the token sequence as one row
(:func:`token_row`, with a note) whenever a rule's layout does not add up to ``n``.

The layouts, checked against transformers 5.23 (``site-packages/transformers``):

- Qwen2/2.5/3-VL (:func:`qwen_merged`): ``image_grid_thw`` gives (t, h, w) in patches per image
  (batch order); ``spatial_merge_size`` x ``spatial_merge_size`` patches merge into one token, row
  major: a ``h/m x w/m`` grid (``models/qwen2_vl/modeling_qwen2_vl.py``, ``PatchMerger``).
- LLaVA-1.5, Gemma3 (:func:`square`): a square grid of ``sqrt(n)`` (24x24 for LLaVA-1.5 at 336 px,
  16x16 for Gemma3's pooled 256 tokens).
- Idefics3/SmolVLM, InternVL (:func:`tiles_then_global`): ``k`` tiles of ``image_seq_len`` /
  ``image_seq_length`` tokens each (a square grid per tile), the whole-image view LAST
  (``models/idefics3/processing_idefics3.py`` ``replace_image_token`` lines 200-226: row-major tiles,
  then ``<global-img>`` and the global view; ``models/got_ocr2/image_processing_pil_got_ocr2.py``
  lines 216-219: the thumbnail is appended after the crops). Tiles are listed in order (row-major);
  their arrangement on the image (rows x cols of tiles) is not recovered.
- LLaVA-OneVision (:func:`base_then_anyres`): the base view first, ``(image_size / patch_size)^2``
  tokens as a square grid, then the unpadded any-res tiles with one newline token per row
  (``models/llava_onevision/modeling_llava_onevision.py`` ``pack_image_features`` lines 265-304),
  kept as one token row (their unpadded shape is not recovered).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GridView:
    """Tokens ``[start, start + rows * cols)`` of one image, row-major on a ``rows x cols`` grid.

    ``whole``: the view covers the whole image (draw it over the image); ``label``: "image",
    "global", "tile 3", "base", or "tokens" (a fallback row); ``note``: why a view is a fallback.
    """

    start: int
    rows: int
    cols: int
    label: str = "image"
    whole: bool = True
    note: str = ""

    @property
    def size(self) -> int:
        return self.rows * self.cols

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GridInputs:
    """What a rule may read: the processor, the model config and the batch's processor outputs."""

    processor: Any
    config: Any
    inputs: Mapping[str, Any]


#: ``rule(n_tokens, batch_image_index, inputs) -> views`` (None: the rule does not apply).
GridRule = Callable[[int, int, GridInputs], "list[GridView] | None"]


def token_row(n: int, note: str) -> list[GridView]:
    """The fallback: the tokens as one row, with ``note`` saying why."""
    return [GridView(0, 1, n, "tokens", whole=False, note=note)]


def _square_view(start: int, n: int, label: str, whole: bool) -> GridView | None:
    side = math.isqrt(n)
    return GridView(start, side, side, label, whole) if side * side == n and n > 0 else None


def square(n: int, k: int, gi: GridInputs) -> list[GridView] | None:
    """One square grid of ``sqrt(n)`` x ``sqrt(n)`` tokens (LLaVA-1.5, Gemma3)."""
    view = _square_view(0, n, "image", True)
    return [view] if view is not None else None


def qwen_merged(n: int, k: int, gi: GridInputs) -> list[GridView] | None:
    """Qwen-VL: ``image_grid_thw[k] = (t, h, w)`` patches, merged ``m x m`` -> ``h/m x w/m`` tokens per frame."""
    thw = gi.inputs.get("image_grid_thw") if gi.inputs is not None else None
    vision = getattr(gi.config, "vision_config", None)
    m = int(getattr(vision, "spatial_merge_size", 0) or 0)
    if thw is None or m < 1 or k >= len(thw):
        return None
    t, h, w = (int(x) for x in thw[k])
    rows, cols = h // m, w // m
    if t != 1 or rows * cols != n:
        return None
    return [GridView(0, rows, cols, "image", True)]


def _tile_tokens(processor: Any) -> int | None:
    for name in ("image_seq_len", "image_seq_length"):
        value = getattr(processor, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def tiles_then_global(n: int, k: int, gi: GridInputs) -> list[GridView] | None:
    """Idefics3/SmolVLM, InternVL: tiles of the processor's per-tile token count, whole view last."""
    per = _tile_tokens(gi.processor)
    if per is None or n % per:
        return None
    count = n // per
    views = [_square_view(i * per, per, f"tile {i + 1}", False) for i in range(count - 1)]
    views.append(_square_view((count - 1) * per, per, "global" if count > 1 else "image", True))
    return None if any(v is None for v in views) else [v for v in views if v is not None]


def base_then_anyres(n: int, k: int, gi: GridInputs) -> list[GridView] | None:
    """LLaVA-OneVision: the base view (square), then the any-res rows (kept as one token row)."""
    vision = getattr(gi.config, "vision_config", None)
    size, patch = getattr(vision, "image_size", None), getattr(vision, "patch_size", None)
    if not size or not patch:
        return None
    base = _square_view(0, (int(size) // int(patch)) ** 2, "base", True)
    if base is None or base.size > n:
        return None
    views = [base]
    if n > base.size:
        views.append(GridView(base.size, 1, n - base.size, "any-res tiles", whole=False,
                              note="unpadded any-res tiles with a newline token per row, kept as one token row"))
    return views


#: Rule name (``FamilySpec.image_grid``) -> rule.
GRID_RULES: dict[str, GridRule] = {
    "qwen_merged": qwen_merged,
    "square": square,
    "tiles_then_global": tiles_then_global,
    "base_then_anyres": base_then_anyres,
}


def image_views(rule: str | None, n: int, k: int, gi: GridInputs) -> list[GridView]:
    """The views of one image of ``n`` tokens (``k``: its index among the batch's images, in order).

    Always covers exactly ``n`` tokens: a missing rule, a rule that does not apply, or views that do
    not add up to ``n`` give :func:`token_row` with a note saying so.
    """
    fn = GRID_RULES.get(rule or "")
    if fn is None:
        return token_row(n, f"no patch-grid rule for this family ({rule!r}); tokens shown in order")
    views = fn(n, k, gi)
    if not views or sum(v.size for v in views) != n:
        return token_row(n, f"the '{rule}' layout does not match the image's {n} tokens; tokens shown in order")
    return views
