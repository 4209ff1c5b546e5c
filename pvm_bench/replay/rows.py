"""The attention probe's quantities for MANY query rows of one attention call, chunk by chunk.

The decode-time probe (:class:`pvm_bench.probes.attention.AttentionProbe`) measures the LAST
query row of every decode forward. Replay feeds prompt + output teacher-forced, so one call
holds many query rows: row ``r`` of a call whose queries are absolute positions
``[total - q, total)`` is the query at position ``total - q + r``, and it sees the keys up to
and including its own position (the causal mask, intersected with the padding / sliding-window
mask transformers built). Per row this module computes exactly what the decode probe computes
for its single row (same definitions, same float32 softmax):

* ``visual``: mean over heads of the summed probability on image keys;
* ``sink``: head-averaged mass on the sink keys (the first visible key, plus every key holding
  more than ``sink_threshold`` of the mass in more than half of the heads), each counted once;
* ``n_keys`` / ``n_visual``: keys / image keys the row may see;
* optional per-image masses (``weights`` columns beyond the image flags) and per-head masses.

Rows are processed ``chunk`` at a time, so nothing ``[rows, keys]``-shaped larger than one
chunk ``[B, H, chunk, keys]`` is ever formed (the memory bound of replay).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHUNK_ELEMENTS = 1 << 21
"""Target number of float32 scores per chunk (``B * H * rows * keys``, 8 MiB)."""


@dataclass
class RowMasses:
    """Per-row results of one chunk, all ``[B, rows]`` (``extra``: ``[B, rows, M]``; ``heads``: ``[B, H, rows]``)."""

    visual: torch.Tensor
    sink: torch.Tensor
    n_keys: torch.Tensor
    n_visual: torch.Tensor
    extra: torch.Tensor | None
    heads: torch.Tensor | None


def rows_per_chunk(batch: int, heads: int, keys: int, budget: int = CHUNK_ELEMENTS) -> int:
    """How many query rows fit the score budget (at least one)."""
    return max(1, budget // max(1, batch * heads * keys))


def allowed_rows(
    mask: torch.Tensor | None, rows: torch.Tensor, q: int, n: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(allowed [B|1, R, n] bool, additive [B, R, n] float32 or None)`` of query rows ``rows``.

    ``rows`` index the call's ``q`` queries; ``mask`` is the call's ``[B, 1, q, n]`` mask
    (boolean True = attend, or additive float) or None, in which case the call is causal with
    the queries bottom-right aligned to the keys (as ``apply_mask`` and sdpa's ``is_causal``):
    row ``r`` may see key ``j`` iff ``j <= n - q + r``.
    """
    if mask is None:
        pos = torch.arange(n, device=rows.device)
        return pos[None, None, :] <= (rows + (n - q)).view(1, -1, 1), None
    sel = mask[:, 0].index_select(1, rows)  # [B, R, n]; masks are shared by all heads
    if sel.dtype == torch.bool:
        return sel, None
    return sel > torch.finfo(sel.dtype).min / 2, sel.float()


def row_masses(
    query: torch.Tensor,
    key: torch.Tensor,
    allowed: torch.Tensor,
    additive: torch.Tensor | None,
    position_bias: torch.Tensor | None,
    weights: torch.Tensor,
    scaling: float | None,
    softcap: float | None,
    sink_threshold: float,
    per_head: bool,
) -> RowMasses:
    """The probe's quantities for query rows ``query [B, H, R, D]`` against ``key [B, H_kv, n, D]``.

    ``allowed`` ``[B|1, R, n]`` bool and ``additive`` (float mask, or None) are the rows' mask;
    ``position_bias`` ``[B, H|1, R, n]`` an additive bias (a writer's, e.g. blind's ``-inf``) or
    None; ``weights`` ``[B, n, 1 + M]``: column 0 image flags, the rest per-image one-hots.
    GQA is folded (query heads grouped on their kv head) instead of repeating K, as the decode
    probe does.
    """
    B, H, R, D = query.shape
    h_kv, n = key.shape[1], key.shape[2]
    g = H // h_kv
    scale = scaling if scaling is not None else D**-0.5
    q = query.reshape(B * h_kv, g * R, D)
    k_t = key.transpose(-1, -2).reshape(B * h_kv, D, n)
    scores = (torch.bmm(q, k_t).float() * scale).view(B, H, R, n)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if position_bias is not None:
        scores = scores + position_bias.float()
    if additive is not None:
        scores = scores + additive[:, None]
    else:
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)  # [B, H, R, n]
    allowed_b = allowed.expand(B, R, n)
    allowed_f = allowed_b.float()
    img = weights[..., 0]  # [B, n]
    first = torch.zeros_like(allowed_b).scatter_(2, allowed_f.argmax(-1, keepdim=True), True)
    sinks = torch.logical_or((probs > sink_threshold).sum(1) > H / 2, first)  # [B, R, n]
    mean = probs.mean(dim=1)  # [B, R, n]
    mass = torch.bmm(mean, weights)  # [B, R, 1 + M]
    return RowMasses(
        visual=mass[..., 0],
        sink=(mean * sinks).sum(-1),
        n_keys=allowed_f.sum(-1),
        n_visual=(allowed_f * img[:, None, :]).sum(-1),
        extra=mass[..., 1:] if weights.shape[-1] > 1 else None,
        heads=torch.matmul(probs, img[:, None, :, None]).squeeze(-1) if per_head else None,
    )
