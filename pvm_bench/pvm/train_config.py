"""The settings of a PVM training run (:class:`TrainConfig`), saved with every checkpoint.

Its own module so that the training loop (:mod:`pvm_bench.pvm.train`) and the output-folder
handling (:mod:`pvm_bench.pvm.train_out`) both import it one way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pvm_bench.training import LoopSettings


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved with every checkpoint).

    ``max_steps`` fixes the schedule length (optimizer steps); when None it is
    ``ceil(epochs * n_rows / global_batch)``. ``stop_after`` ends the run early (as if killed)
    without changing the schedule, for resume tests. ``layers``/``hidden_size`` apply to a new
    PVM; ``init_pvm`` starts from an existing adapter/checkpoint instead.
    """

    model: str
    data: str
    out: str
    split: str = "train"
    layers: list[int | float] | str | None = None
    hidden_size: int = 512
    init_pvm: str | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    batch_size: int = 1
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None
    stop_after: int | None = None
    save_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    gradient_checkpointing: bool = False
    limit: int | None = None
    #: None: continue OUT's checkpoint when it was made with the same settings, refuse when not;
    #: True: continue it with the checkpoint's own settings; False: ignore checkpoints.
    resume: bool | None = None
    #: Delete OUT's checkpoints, log and adapter first and start over.
    overwrite: bool = False
    progress: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def loop(self, total_steps: int) -> LoopSettings:
        """The optimisation settings of this run (the shared loop's shape)."""
        return LoopSettings(
            steps=total_steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            betas=(self.betas[0], self.betas[1]),
            warmup_ratio=self.warmup_ratio,
            max_grad_norm=self.max_grad_norm,
            grad_accum=self.grad_accum,
        )
