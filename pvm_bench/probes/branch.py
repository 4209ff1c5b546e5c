"""The ``branch`` probe: how much the PVM branch writes into the residual stream at each step.

For every generated step and PVM layer it records ``pvm_ratio = ||out|| / ||h||`` (the branch
output against the residual after self-attention, at the query position of that step) and
``pvm_gate`` (the layer's ``gate_alpha``). Records: ``{"step", "layer", "pvm_ratio",
"pvm_gate"}``; step 0 is the query at the last prompt position. While the PVM is disabled
(the base variant) nothing is recorded. Register it in the probe registry as
``"branch": lambda per_head: BranchProbe()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.probes.base import BatchContext, Probe, ProbeError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


class BranchProbe(Probe):
    """Per-step, per-layer PVM contribution ratio and gate value."""

    name = "branch"

    def __init__(self) -> None:
        self._remove: Any = None
        self._handle: Any = None
        self._steps: dict[int, int] = {}
        self._rows: list[list[dict[str, Any]]] = []

    def install(self, model: LoadedModel) -> None:
        handle = getattr(model, "pvm", None)
        if handle is None:
            raise ProbeError("the branch probe needs a PVM; load the model with --pvm (or attach_pvm)")
        self._handle = handle
        self._remove = handle.add_observer(self._observe)

    def uninstall(self) -> None:
        if self._remove is not None:
            self._remove()
        self._remove = None
        self._handle = None

    def begin_batch(self, ctx: BatchContext) -> None:
        self._steps = {}
        self._rows = [[] for _ in range(ctx.batch_size)]

    def _observe(self, layer: int, h: torch.Tensor, out: torch.Tensor | None) -> None:
        if not self._rows or h.shape[0] != len(self._rows):
            return
        step = self._steps.get(layer, 0)
        self._steps[layer] = step + 1
        gate = float(self._handle.blocks[layer].gate_alpha.detach().float().reshape(-1)[0])
        if out is None:
            ratios = [0.0] * h.shape[0]
        else:
            last_out = out[:, -1].detach().float().norm(dim=-1)
            last_h = h[:, -1].detach().float().norm(dim=-1).clamp_min(1e-12)
            ratios = (last_out / last_h).tolist()
        for row, ratio in enumerate(ratios):
            self._rows[row].append({"step": step, "layer": layer, "pvm_ratio": ratio, "pvm_gate": gate})

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Per row, the records of steps ``0 .. n - 1`` (one per PVM layer and step)."""
        out = [[r for r in rows if r["step"] < n] for rows, n in zip(self._rows, n_generated)]
        self._rows = []
        return out
