"""``pvm-bench bench batch``: samples/s of batched generation, batch 8 vs batch 1, same outputs.

The runner generates a task's samples in left-padded batches (``--batch-size``); per-row seeds
and masks make the outputs independent of the batch. This bench generates the same requests
(one image each, prompts of different lengths, so left padding is exercised) through a
:class:`~pvm_bench.session.GenerationSession` at each batch size, checks that every request's
tokens are identical across batch sizes, and reports samples/s by wall time and by process CPU
time (with one thread the CPU figure barely moves with other load on a shared machine).
Generation is greedy with ``min_new_tokens = max_new_tokens`` so every row does the same work
(a random model could otherwise stop at EOS at random points).

Measured on a 2-core CPU, 1 thread, the 87M bench model, 16 requests: batch 8 vs 1 = x2.97 at 64
tokens, x3.47 at 128 tokens (the default): prefill is compute bound and gains little from
batching, decode steps read the weights once for all rows, so longer answers gain more.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pvm_bench.bench.model import DEFAULT_SIZE, DeviceOption, ModelOption, RandomSizeOption, bench_model
from pvm_bench.cli.support import fail, user_errors

PROMPTS = (
    "Describe the image.",
    "What colour dominates this picture? Answer in one word, then explain.",
    "Count the shapes you can see and describe each of them in turn.",
    "Is there any text in the image?",
    "Write a short story inspired by this picture, with a beginning, a middle and an end.",
    "Which object is closest to the camera?",
    "Describe the lighting.",
    "List three adjectives for this image and justify them briefly.",
)


def bench_requests(n: int) -> list[Any]:
    """``n`` single-image requests with different prompts, image sizes and colours."""
    from PIL import Image

    from pvm_bench.models.generation import Request

    out = []
    for i in range(n):
        size = (64 + 16 * (i % 3), 64 + 16 * ((i + 1) % 3))
        image = Image.new("RGB", size, ((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 90) % 256))
        parts = [{"type": "image"}, {"type": "text", "text": PROMPTS[i % len(PROMPTS)]}]
        out.append(Request(messages=[{"role": "user", "content": parts}], images=[image], seed=i, key=i))
    return out


def _force_length(lm: Any, new_tokens: int) -> None:
    """Make every row generate exactly ``new_tokens`` (min_new_tokens on the model's generation config)."""
    lm.hf_model.generation_config.min_new_tokens = new_tokens


def bench_batch(model: str, *, samples: int = 16, batch_sizes: tuple[int, ...] = (1, 8),
                new_tokens: int = 128, probes: tuple[str, ...] = (), device: str = "cpu",
                threads: int | None = None, repeats: int = 1) -> dict[str, Any]:
    """Samples/s per batch size (best of ``repeats``), the ratios to the first size, and output equality."""
    import torch

    from pvm_bench.models.loading import load_model
    from pvm_bench.session import GenerationSession

    if threads:
        torch.set_num_threads(threads)
    lm = load_model(model, device=device)
    requests = bench_requests(samples)
    rows: dict[int, dict[str, Any]] = {}
    tokens: dict[int, list[list[int]]] = {}
    with GenerationSession(lm, list(probes)) as session, session.variant("base"):
        _force_length(lm, 4)
        session.generate(requests[:2], max_new_tokens=4)  # warm-up: kernels, allocator, lazy imports
        _force_length(lm, new_tokens)
        for size in batch_sizes:
            walls, cpus = [], []
            for _ in range(max(1, repeats)):
                out: list[list[int]] = []
                start, cpu0 = time.perf_counter(), time.process_time()
                for i in range(0, samples, size):
                    gens = session.generate(requests[i : i + size], max_new_tokens=new_tokens)
                    out.extend(g.token_ids for g in gens)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu0)
            tokens[size] = out
            rows[size] = {"batch_size": size, "samples_per_s": samples / min(walls),
                          "samples_per_cpu_s": samples / min(cpus), "runs_s": [round(w, 3) for w in walls],
                          "runs_cpu_s": [round(c, 3) for c in cpus]}
    ref = batch_sizes[0]
    for size, row in rows.items():
        row["speedup"] = row["samples_per_s"] / rows[ref]["samples_per_s"]
        row["cpu_speedup"] = row["samples_per_cpu_s"] / rows[ref]["samples_per_cpu_s"]
        row["same_outputs"] = tokens[size] == tokens[ref]
    return {
        "model": model,
        "n_params": sum(p.numel() for p in lm.hf_model.parameters()),
        "device": str(lm.device), "threads": torch.get_num_threads(), "samples": samples,
        "new_tokens": new_tokens, "probes": list(probes), "repeats": repeats,
        "rows": [rows[s] for s in batch_sizes],
    }


def register_bench(bench: typer.Typer) -> None:
    """Add ``batch`` to the ``pvm-bench bench`` command group."""

    @bench.command("batch")
    @user_errors
    def batch_command(
        model: ModelOption = None,
        random_size: RandomSizeOption = DEFAULT_SIZE,
        samples: Annotated[int, typer.Option(min=1, help="Requests generated at each batch size.")] = 16,
        batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes; ratios are to the first.")] = "1,8",
        new_tokens: Annotated[
            int,
            typer.Option(
                min=1,
                help="Tokens generated per request (forced; the speedup grows with it: prefill batches poorly on CPU).",
            ),
        ] = 128,
        probes: Annotated[
            str, typer.Option(help="Comma-separated probes to run as the runner would ('' for none).")
        ] = "",
        repeats: Annotated[int, typer.Option(min=1, help="Runs per batch size; the fastest counts.")] = 1,
        device: DeviceOption = "cpu",
        threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
        ] = None,
    ) -> None:
        """Samples/s of batched generation (batch 8 vs batch 1 by default) on the same requests and outputs."""
        from rich.console import Console

        try:
            sizes = tuple(int(v) for v in batch_sizes.split(",") if v.strip())
        except ValueError:
            raise fail(f"--batch-sizes must be comma-separated integers, got '{batch_sizes}'") from None
        if not sizes or min(sizes) < 1:
            raise fail("--batch-sizes needs at least one positive size")
        with bench_model(model, random_size) as (model_dir, label):
            res = bench_batch(model_dir, samples=samples, batch_sizes=sizes, new_tokens=new_tokens,
                              probes=tuple(p.strip() for p in probes.split(",") if p.strip()), device=device,
                              threads=threads, repeats=repeats)
        res["model"] = label
        out = Console(width=170)
        out.print(f"{res['model']} ({res['n_params'] / 1e6:.1f}M params) on {res['device']}, {res['threads']} threads: "
                  f"{res['samples']} requests x {res['new_tokens']} tokens, probes {','.join(res['probes']) or 'none'}",
                  highlight=False)
        for row in res["rows"]:
            out.print(
                f"batch {row['batch_size']:>3}: {row['samples_per_s']:.2f} samples/s ({row['samples_per_cpu_s']:.2f} "
                "per "
                f"CPU-s); x{row['speedup']:.2f} wall, x{row['cpu_speedup']:.2f} CPU vs batch {sizes[0]}; "
                f"outputs {'identical' if row['same_outputs'] else 'DIFFER'}",
                highlight=False,
            )
        if json_path is not None:
            json_path.write_text(json.dumps(res, indent=2) + "\n")
        if not all(row["same_outputs"] for row in res["rows"]):
            raise typer.Exit(1)
