"""The softmax of an attention call's LAST query row, shared by the readers of the attention site.

:class:`~pvm_bench.probes.attention.AttentionProbe` (visual mass) and
:class:`~pvm_bench.probes.maps.MapsProbe` (spatial maps) both need, per decoder layer and step,
``softmax(q_last . K^T * scale + mask + bias)`` over the call's keys, exactly as the dispatching
attention function (:mod:`pvm_bench.instrument.attention`) computes the output. Nothing
``[q, keys]``-shaped is formed: GQA folds the query heads of each kv group (``[B * H_kv, g, D]``)
instead of repeating K.
"""

from __future__ import annotations

import torch


def row_mask(mask: torch.Tensor | None, h_kv: int, batch: int, n: int,
             device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The last query row's mask as ``(additive [B * H_kv, 1, n] float32 or None, allowed [B, n] bool)``.

    ``mask`` is the call's boolean (True = attend) or additive float mask ``[B, 1, q, n]`` (shared by
    all heads), or None (a causal call without padding: the last query sees every key passed).
    """
    if mask is None:
        return None, torch.ones(batch, n, dtype=torch.bool, device=device)
    row = mask[:, :1, -1, :]  # [B, 1, n]
    if row.dtype == torch.bool:
        allowed = row[:, 0]
        additive = torch.zeros(row.shape, dtype=torch.float32, device=row.device).masked_fill_(~row, float("-inf"))
    else:
        allowed = row[:, 0] > torch.finfo(row.dtype).min / 2
        additive = row.float()
    # One row per (batch, kv head): the layout the fused score product uses.
    additive = additive.repeat_interleave(h_kv, dim=0) if h_kv > 1 else additive
    return additive, allowed


def last_row_probs(query: torch.Tensor, key: torch.Tensor, additive: torch.Tensor | None, scaling: float | None,
                   softcap: float | None, position_bias: torch.Tensor | None) -> torch.Tensor:
    """``[B, H, n]`` float32 attention probabilities of the last query row of ``query [B, H, q, D]``
    over ``key [B, H_kv, n, D]`` (``additive`` from :func:`row_mask`; ``position_bias`` ``[B, H, q, n]``)."""
    B, H, _, D = query.shape
    n, h_kv = key.shape[2], key.shape[1]
    scale = scaling if scaling is not None else D**-0.5
    q = query[:, :, -1, :].reshape(B * h_kv, H // h_kv, D)
    k_t = key.transpose(-1, -2).reshape(B * h_kv, D, n)
    if additive is not None and softcap is None and position_bias is None and q.dtype == torch.float32:
        scores = torch.baddbmm(additive, q, k_t, alpha=scale)  # scale, product and mask fused
    else:
        scores = torch.bmm(q, k_t).float() * scale
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        if position_bias is not None:
            bias = position_bias[:, :, -1, :].float().expand(B, H, n)
            scores = scores + bias.reshape(B * h_kv, H // h_kv, n)
        if additive is not None:
            scores = scores + additive
    return torch.softmax(scores.view(B, H, n), dim=-1)
