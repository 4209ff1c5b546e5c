"""``pvm-bench organism ...``: rebuild the built-in model organism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``organism`` command group (``train``, ``info``) to ``app``."""
    organism = typer.Typer(help="The built-in tiny model organism (tiny Qwen3-VL + PVM adapter).", no_args_is_help=True)

    @organism.command("train")
    def train(
        out: Annotated[
            Path,
            typer.Option("--out", help="Output dir: OUT/base (model), OUT/pvm (adapter), OUT/MANIFEST.json."),
        ] = Path("organism"),
        seed: Annotated[int, typer.Option(help="Seed; 0 reproduces the shipped weights.")] = 0,
        steps: Annotated[int | None, typer.Option(help="Stage-1 (base) steps (default: the shipped recipe's).")] = None,
        pvm_steps: Annotated[int | None, typer.Option(help="Stage-2 (PVM only) steps.")] = None,
        n_examples: Annotated[
            int | None,
            typer.Option(help="Scale the training sets to about this many stage-1 examples (tests)."),
        ] = None,
        threads: Annotated[
            int | None,
            typer.Option(
                min=1, help="torch CPU threads (default: the recipe's 1; other counts may change the weights' bytes)."
            ),
        ] = None,
    ) -> None:
        """Train the organism from scratch (stage 1: whole model; stage 2: PVM only), deterministically."""
        from pvm_bench.organism.train import TrainConfig, train_organism

        cfg = TrainConfig(seed=seed)
        if steps is not None:
            cfg.base_steps = steps
        if pvm_steps is not None:
            cfg.pvm_steps = pvm_steps
        if threads is not None:
            cfg.threads = threads
        if n_examples is not None:
            total = cfg.n_short + cfg.n_long
            cfg.n_short = max(cfg.batch_size, n_examples * cfg.n_short // total)
            cfg.n_long = max(cfg.batch_size, n_examples * cfg.n_long // total)
            cfg.n_pvm = max(2 * cfg.batch_size, n_examples * cfg.n_pvm // total)
            cfg.n_val = max(8, n_examples * cfg.n_val // total)
        manifest = train_organism(out, cfg, log=lambda msg: typer.echo(msg))
        typer.echo(
            json.dumps(
                {k: manifest["sha256"][k] for k in ("base/model.safetensors", "pvm/adapter.safetensors")},
                indent=2,
            )
        )

    @organism.command("info")
    def info() -> None:
        """Where the shipped weights are and their recorded hashes."""
        from pvm_bench.organism import MANIFEST, default_run_options

        typer.echo(json.dumps(default_run_options(), indent=2))
        if MANIFEST.is_file():
            typer.echo(json.dumps(json.loads(MANIFEST.read_text()).get("sha256", {}), indent=2))

    app.add_typer(organism, name="organism")
