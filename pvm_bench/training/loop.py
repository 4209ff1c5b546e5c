"""The optimisation loop: AdamW, linear warmup + cosine schedule, gradient accumulation,
data-parallel gradient averaging and clipping, one callback per optimizer step.

Determinism: the learning rate of step ``s`` is ``lr * lr_multiplier(s, steps, warmup)``, a pure
function of the step (no scheduler state to save or restore); the batch order is the caller's
(see :mod:`pvm_bench.training.order`). The loop itself draws no random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pvm_bench.runner.distributed import Dist


@dataclass
class LoopSettings:
    """The shape of one optimisation run (``pvm train``; each stage of the organism's recipe).

    ``warmup_ratio``: the first ``ceil(warmup_ratio * steps)`` steps ramp the learning rate
    linearly up to ``lr``; then it follows a cosine down to 0 at ``steps``. ``max_grad_norm``:
    clip the global gradient norm (None or 0: no clipping). ``grad_accum``: micro-batches per
    optimizer step (their losses are averaged).
    """

    steps: int
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    grad_accum: int = 1

    @property
    def warmup(self) -> int:
        return warmup_steps(self.steps, self.warmup_ratio)

    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        return self.lr * lr_multiplier(step, self.steps, self.warmup)


@dataclass
class StepResult:
    """One finished optimizer step: ``step`` counts finished steps (1-based); ``loss`` is the mean
    of the micro-batch losses (averaged over ranks); ``aux`` holds what the loss function returned
    next to each of this rank's micro-batch losses."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    aux: list[Any] = field(default_factory=list)


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """Number of warmup steps: ``ceil(warmup_ratio * total_steps)`` (0 when the ratio is 0)."""
    return math.ceil(warmup_ratio * total_steps)


def lr_multiplier(step: int, total_steps: int, warmup: int) -> float:
    """Learning-rate factor of step ``step`` (0-based): ``(step + 1) / warmup`` during warmup, then
    a cosine from 1 to 0 over the remaining steps (clamped at 0 past ``total_steps``)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(params: Sequence[torch.nn.Parameter], settings: LoopSettings) -> torch.optim.Optimizer:
    """AdamW over ``params`` with the settings' learning rate, betas and decoupled weight decay."""
    return torch.optim.AdamW(list(params), lr=settings.lr, betas=(settings.betas[0], settings.betas[1]),
                             weight_decay=settings.weight_decay)


#: ``micro_loss(step, micro) -> (loss, aux)``: the forward of micro-batch ``micro`` of optimizer
#: step ``step`` (0-based both); ``loss`` is a scalar tensor to minimise, ``aux`` anything to log.
MicroLoss = Callable[[int, int], tuple[torch.Tensor, Any]]


def run_steps(
    params: Sequence[torch.nn.Parameter],
    settings: LoopSettings,
    micro_loss: MicroLoss,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    start: int = 0,
    stop: int | None = None,
    dist: Dist | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> list[float]:
    """Optimizer steps ``start .. stop-1`` (default: to ``settings.steps``); returns their losses.

    Per step: zero the gradients, set the learning rate, backpropagate each micro-batch's
    ``loss / grad_accum``; with a data-parallel ``dist`` (world > 1), average the gradients and the
    loss over ranks (what DDP does, for any set of parameters); clip; step; call ``on_step``.
    ``optimizer`` (default: :func:`make_optimizer`) is passed in when its state was restored
    from a checkpoint.
    """
    params = list(params)
    opt = optimizer if optimizer is not None else make_optimizer(params, settings)
    world = dist.world if dist is not None else 1
    stop = settings.steps if stop is None else stop
    losses: list[float] = []
    for step in range(start, stop):
        opt.zero_grad(set_to_none=True)
        lr = settings.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), dtype=torch.float64)
        aux = []
        for micro in range(settings.grad_accum):
            loss, extra = micro_loss(step, micro)
            (loss / settings.grad_accum).backward()
            step_loss += float(loss.detach()) / settings.grad_accum
            aux.append(extra)
        if world > 1:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            loss_t = step_loss.to(grads[0].device, torch.float32)
            _all_reduce_mean([*grads, loss_t], world)  # a parameter without a gradient stays without one
            step_loss = loss_t.double().cpu()
        grad_norm = (
            float(torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)) if settings.max_grad_norm else 0.0
        )
        opt.step()
        value = float(step_loss)
        losses.append(value)
        if on_step is not None:
            on_step(StepResult(step=step + 1, loss=value, lr=lr, grad_norm=grad_norm, aux=aux))
    return losses


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Average ``tensors`` in place over the ranks of the default process group (one all-reduce)."""
    import torch.distributed as tdist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    tdist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
