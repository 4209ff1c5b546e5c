"""The one training loop of pvm-bench, shared by ``pvm-bench pvm train`` (:mod:`pvm_bench.pvm.train`)
and the model organism's recipe (:mod:`pvm_bench.organism.train`).

* :class:`LoopSettings`: the shape of an optimisation run (steps, AdamW hyper-parameters, warmup,
  clipping, gradient accumulation);
* :func:`lr_multiplier` / :func:`warmup_steps`: the schedule (linear warmup, cosine to 0);
* :func:`make_optimizer`: the optimizer setup (AdamW);
* :func:`run_steps`: the loop (micro-batches, data-parallel gradient averaging, clipping, per-step
  learning rate, a callback per step);
* :mod:`pvm_bench.training.order`: batch orders that are pure functions of a seed;
* :mod:`pvm_bench.training.state`: optimizer and RNG state as safetensors + JSON (no pickles).

Callers bring the model, the data and the loss as a function of (step, micro-batch).
"""

from pvm_bench.training.loop import (
    LoopSettings,
    StepResult,
    lr_multiplier,
    make_optimizer,
    run_steps,
    warmup_steps,
)
from pvm_bench.training.order import bucketed_batches, sample_indices

__all__ = [
    "LoopSettings", "StepResult", "bucketed_batches", "lr_multiplier", "make_optimizer", "run_steps",
    "sample_indices", "warmup_steps",
]
