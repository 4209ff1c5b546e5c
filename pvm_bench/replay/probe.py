"""The attention probe, replayed: every generated step's query row of a teacher-forced forward.

:class:`ReplayAttentionProbe` is the decode-time :class:`~pvm_bench.probes.attention.AttentionProbe`
(same install on the instrument's attention site, same per-batch buffers, same records from
:meth:`~pvm_bench.probes.attention.AttentionProbe.end_batch`) with one difference: an attention
call may carry many query rows, and every row that is a generated step is measured, not only the
last one.

Which row is step ``t``. The decode probe's step 0 is the prefill forward's last row (absolute
position ``P - 1`` of a prompt left-padded to ``P``: the row whose output predicts generated token
0), and step ``t >= 1`` the decode forward that feeds generated token ``t - 1`` at position
``P - 1 + t`` (its output predicts token ``t``). Its keys are every position ``<= P - 1 + t`` the
mask lets it see. So in a teacher-forced pass over ``prompt + output[:-1]`` the query at absolute
position ``p`` is step ``p - (P - 1)``; rows before ``P - 1`` are the prompt and not recorded.
The keys a row sees are exactly the decode step's (same positions, same KV up to float rounding:
a causal decoder's keys/values at a position do not depend on later positions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.replay.rows import allowed_rows, row_masses, rows_per_chunk

if TYPE_CHECKING:
    from pvm_bench.instrument.state import ForwardState


class ReplayAttentionProbe(AttentionProbe):
    """:class:`AttentionProbe` for teacher-forced forwards: one record per (generated step, layer). Its batch
    buffers are the decode probe's, sized by ``ctx.max_new_tokens`` = the longest replayed output."""

    name = "attention"

    def observe_attention(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float | None,
        softcap: float | None,
        position_bias: torch.Tensor | None,
        state: ForwardState,
    ) -> None:
        """Measure every query row of the call that is a generated step (chunked over rows)."""
        if not self._active:
            return
        B, H, q, _ = query.shape
        n = key.shape[2]
        total = state.total
        first_step = total - q - (self._prompt_len - 1)  # the step of the call's row 0
        lo, hi = max(0, -first_step), min(q, self._n_steps - first_step)
        if hi <= lo:
            return
        self._calls += 1
        device = key.device
        weights = self._img[:, total - n : total].to(device)[..., None]  # [B, n, 1]: image flags
        if self._img_onehot is not None:  # columns 1..: one per image (--per-image)
            weights = torch.cat((weights, self._img_onehot[:, total - n : total].to(device)), dim=-1)
        step = rows_per_chunk(B, H, n)
        for start in range(lo, hi, step):
            rows = torch.arange(start, min(start + step, hi), device=device)
            allowed, additive = allowed_rows(mask, rows, q, n)
            bias = position_bias.index_select(2, rows) if position_bias is not None else None
            out = row_masses(query.index_select(2, rows), key, allowed, additive, bias, weights, scaling, softcap,
                             self.sink_threshold, self.per_head)
            steps = rows + first_step
            self._buf[steps, layer, 0] = out.visual.T
            self._buf[steps, layer, 1] = out.sink.T
            self._buf[steps, layer, 2] = out.n_keys.T
            self._buf[steps, layer, 3] = out.n_visual.T
            if self._img_onehot is not None and out.extra is not None:
                self._ibuf[steps, layer] = out.extra.permute(1, 2, 0)
            if out.heads is not None:
                if self._heads is None:
                    self._heads = torch.zeros(self._n_steps, self._n_layers, B, H, device=device)
                self._heads[steps, layer] = out.heads.permute(2, 0, 1)


def make_probe(per_head: bool = False) -> ReplayAttentionProbe:
    """The replay counterpart of ``--probes attention``."""
    return ReplayAttentionProbe(per_head=per_head)


__all__ = ["ReplayAttentionProbe", "make_probe"]
