"""The probes of one run: ``--probes`` names, ``--per-image``, and ``--maps`` (which samples, their files).

:class:`RunProbes` is built by the runner once the tasks are loaded (so a ``--maps`` id that no
task has stops the run before the model loads), makes the probe instances, and after each batch
writes the spatial maps of the selected samples (:mod:`pvm_bench.runner.maps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pvm_bench.config import RunConfig
from pvm_bench.runner.maps import chosen_keys, save_collected


class RunProbes:
    """The run's probes; ``maps_chosen`` = the (task, sample_id) pairs ``--maps`` selects."""

    def __init__(self, config: RunConfig, tasks: Sequence[tuple[Any, Sequence[Any]]]) -> None:
        self.config = config
        self.maps_chosen = chosen_keys(config.maps, tasks)
        self.maps_probe: Any = None

    def make(self) -> list[Any]:
        """New probe instances: the ``--probes`` names (``maps`` there is ignored: ``--maps`` selects),
        the attention probe split per image with ``--per-image``, and the maps probe when ``--maps``
        selects any sample (otherwise it is not installed at all: no cost)."""
        cfg = self.config
        names = [p for p in cfg.probes if p != "maps"]
        probes: list[Any] = []
        if names:
            from pvm_bench.probes.registry import make_probes

            probes = make_probes(names, per_head=cfg.per_head)
        for probe in probes:  # --per-image: the attention probe also splits the mass per image
            if cfg.per_image and hasattr(probe, "per_image"):
                probe.per_image = True
        if self.maps_chosen:
            from pvm_bench.probes.maps import MapsProbe

            chosen = self.maps_chosen
            self.maps_probe = MapsProbe(wanted=lambda item: (item.task.name, str(item.sample.id)) in chosen)
            probes.append(self.maps_probe)
        return probes

    def after_batch(self, run_dir: Path, variant: str, generations: Sequence[Any], tokenizer: Any) -> None:
        """Write the batch's spatial maps (call after its samples are in samples.jsonl)."""
        if self.maps_probe is not None:
            save_collected(run_dir, variant, generations, self.maps_probe.collected, tokenizer)
