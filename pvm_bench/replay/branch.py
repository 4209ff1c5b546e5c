"""The ``branch`` probe, replayed: the PVM branch's share of the residual at every generated row.

:class:`ReplayBranchProbe` is the decode-time :class:`~pvm_bench.probes.branch.BranchProbe`
(same observer on the PVM handle, same records) reading every query row of a teacher-forced
forward that is a generated step instead of the last one: row ``r`` of a forward whose queries
are positions ``[total - q, total)`` is step ``total - q + r - (P - 1)`` (see
:mod:`pvm_bench.replay.probe` for the step convention).
"""

from __future__ import annotations

from typing import Any

import torch

from pvm_bench.probes.base import BatchContext
from pvm_bench.probes.branch import BranchProbe


class ReplayBranchProbe(BranchProbe):
    """:class:`BranchProbe` for teacher-forced forwards: one record per (generated step, PVM layer)."""

    def begin_batch(self, ctx: BatchContext) -> None:
        super().begin_batch(ctx)
        self._last_prompt = ctx.prompt_len - 1
        self._n_steps = max(int(ctx.max_new_tokens), 1)

    def _observe(self, layer: int, h: torch.Tensor, out: torch.Tensor | None) -> None:
        state = self._state
        if not self._batch or h.shape[0] != self._batch or state is None or state.bypass:
            return
        q = h.shape[1]
        first = state.total - q - self._last_prompt  # the step of the call's row 0
        lo, hi = max(0, -first), min(q, self._n_steps - first)
        if hi <= lo:
            return
        gate = self._handle.blocks[layer].gate_alpha.detach().float().reshape(-1)[:1]
        if out is None:
            ratio = torch.zeros(h.shape[0], hi - lo, device=h.device)
        else:
            ratio = out[:, lo:hi].detach().float().norm(dim=-1) / h[:, lo:hi].detach().float().norm(dim=-1).clamp_min(
                1e-12
            )
        self._seen.extend((first + r, layer, ratio[:, r - lo], gate) for r in range(lo, hi))

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """As the decode probe's, in its (step, layer) order."""
        self._seen.sort(key=lambda seen: (seen[0], seen[1]))
        return super().end_batch(n_generated)
