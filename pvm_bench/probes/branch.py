"""The ``branch`` probe: how much the PVM branch writes into the residual stream at each step.

For every generated step and PVM layer it records ``pvm_ratio = ||out|| / ||h||`` (the branch
output against the residual after self-attention, at the query position of that step) and
``pvm_gate`` (the layer's ``gate_alpha``). Records: ``{"step", "layer", "pvm_ratio",
"pvm_gate"}``; step 0 is the query at the last prompt position. While the PVM is disabled
(the base variant) nothing is recorded. Registered as ``branch`` in
:data:`pvm_bench.probes.registry.BUILTIN_PROBES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.instrument import instrument_for
from pvm_bench.probes.base import BatchContext, Probe, ProbeError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


class BranchProbe(Probe):
    """Per-step, per-layer PVM contribution ratio and gate value.

    The step is the instrument's (:class:`~pvm_bench.instrument.state.ForwardState`); values stay
    on the device until :meth:`end_batch` (one transfer per batch, no sync per step).
    """

    name = "branch"

    def __init__(self) -> None:
        self._remove: Any = None
        self._handle: Any = None
        self._state: Any = None
        self._release: Any = None
        self._batch = 0
        self._seen: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []

    def install(self, model: LoadedModel) -> None:
        handle = getattr(model, "pvm", None)
        if handle is None:
            raise ProbeError("the branch probe needs a PVM; load the model with --pvm (or attach_pvm)")
        inst = instrument_for(model)
        self._state = inst.state
        self._release = inst.acquire()
        self._handle = handle
        self._remove = handle.add_observer(self._observe)

    def uninstall(self) -> None:
        if self._remove is not None:
            self._remove()
        if self._release is not None:
            self._release()
        self._remove = self._release = None
        self._handle = None

    def begin_batch(self, ctx: BatchContext) -> None:
        self._batch = ctx.batch_size
        self._seen = []

    def _observe(self, layer: int, h: torch.Tensor, out: torch.Tensor | None) -> None:
        step = self._state.step if self._state is not None else -1
        if not self._batch or h.shape[0] != self._batch or step < 0 or self._state.bypass:
            return
        gate = self._handle.blocks[layer].gate_alpha.detach().float().reshape(-1)[:1]
        if out is None:
            ratio = torch.zeros(h.shape[0], device=h.device)
        else:
            last_out = out[:, -1].detach().float().norm(dim=-1)
            last_h = h[:, -1].detach().float().norm(dim=-1).clamp_min(1e-12)
            ratio = last_out / last_h
        self._seen.append((step, layer, ratio, gate))

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Per row, the records of steps ``0 .. n - 1`` (one per PVM layer and step)."""
        rows: list[list[dict[str, Any]]] = [[] for _ in n_generated]
        if self._seen:
            ratios = torch.stack([r.to("cpu") for _, _, r, _ in self._seen]).tolist()  # [calls, B]
            gates = torch.cat([g.to("cpu") for _, _, _, g in self._seen]).tolist()
            for (step, layer, _, _), ratio, gate in zip(self._seen, ratios, gates):
                for row, n in enumerate(n_generated):
                    if step < n:
                        rows[row].append({"step": step, "layer": layer, "pvm_ratio": ratio[row], "pvm_gate": gate})
        self._seen = []
        self._batch = 0
        return rows


def make_probe(per_head: bool = False) -> BranchProbe:
    """Registry factory (``--probes branch``)."""
    return BranchProbe()
