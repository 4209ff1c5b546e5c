"""CLI: ``pvm-bench pvm info|train|export`` and ``pvm-bench bench pvm``.

The main CLI calls :func:`register` with the root app and :func:`register_bench` with the
``bench`` group.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pvm_bench.bench.model import DEFAULT_SIZE, DeviceOption, ModelOption, RandomSizeOption, bench_model
from pvm_bench.cli.support import fail
from pvm_bench.errors import UserError

stdout = Console()


def _layers(value: str | None) -> list[int | float] | None:
    """``"8,16,24"`` or ``"0.25,0.5,0.75"`` -> numbers; None/empty = the default layers."""
    if not value:
        return None
    out: list[int | float] = []
    for part in value.split(","):
        part = part.strip()
        if part:
            out.append(float(part) if any(c in part for c in ".eE") else int(part))
    return out


def register(app: typer.Typer) -> None:
    """Add the ``pvm`` command group (info, train, export) to ``app``."""
    pvm_app = typer.Typer(help="Persistent Visual Memory: size, training, export.", no_args_is_help=True)
    app.add_typer(pvm_app, name="pvm")

    @pvm_app.command("info")
    def info_command(
        model: Annotated[
            str, typer.Option(help="Hub id, model dir (config only), or a builtin shape: qwen3-vl-8b, qwen3-vl-4b.")
        ],
        layers: Annotated[
            str | None,
            typer.Option(
                help="Comma-separated layer indices or depth fractions (default: paper layers / 1/4,1/2,3/4)."
            ),
        ] = None,
        dim: Annotated[int, typer.Option(help="PVM latent size d (pvm_hidden_size).")] = 512,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    ) -> None:
        """PVM parameter count and share of the base model, computed on the meta device (no weights)."""
        from pvm_bench.pvm.info import pvm_info

        try:
            info = pvm_info(model, _layers(layers), dim)
        except (UserError, ValueError) as exc:
            raise fail(str(exc)) from None
        if json_out:
            stdout.print_json(json.dumps(info.to_dict()))
        else:
            stdout.print(info.summary(), highlight=False)

    @pvm_app.command("train")
    def train_command(
        model: Annotated[str, typer.Option(help="Base model: hub id or local dir.")],
        data: Annotated[
            str, typer.Option(help="HF dataset id or local json/jsonl/parquet (image(s), prompt, response).")
        ],
        out: Annotated[Path, typer.Option(help="Output dir: final adapter, checkpoints/, train_log.jsonl.")],
        split: Annotated[str, typer.Option(help="Dataset split.")] = "train",
        layers: Annotated[str | None, typer.Option(help="PVM layers (indices or fractions).")] = None,
        dim: Annotated[int, typer.Option(help="PVM latent size d.")] = 512,
        init_pvm: Annotated[str | None, typer.Option(help="Start from this adapter / reference checkpoint.")] = None,
        lr: Annotated[float, typer.Option(help="AdamW learning rate (paper: 1e-4).")] = 1e-4,
        weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.0,
        warmup_ratio: Annotated[float, typer.Option(help="Linear warmup share of the steps (paper: 0.1).")] = 0.1,
        batch_size: Annotated[int, typer.Option(help="Micro-batch per device.")] = 1,
        grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.")] = 1,
        epochs: Annotated[float, typer.Option(help="Epochs (ignored with --max-steps).")] = 1.0,
        max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (schedule length).")] = None,
        save_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0 = only at the end / on stop).")] = 0,
        seed: Annotated[int, typer.Option(help="Seed (PVM init and data order).")] = 0,
        dtype: Annotated[str, typer.Option(help="auto (bf16 on GPU) | float32 | bfloat16.")] = "auto",
        device: Annotated[
            str, typer.Option(help="auto | cpu | cuda | cuda:N (torchrun: the local rank's GPU).")
        ] = "auto",
        gradient_checkpointing: Annotated[bool, typer.Option(help="Recompute activations in backward.")] = False,
        limit: Annotated[int | None, typer.Option(help="Use only the first N rows.")] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume",
                help="Continue OUT's checkpoint with the checkpoint's own settings (default: continue it only when "
                "the settings match).",
            ),
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Delete OUT's checkpoints, log and adapter and start over.")
        ] = False,
        quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    ) -> None:
        """Train only the PVM parameters (base LLM and vision frozen); loss on response tokens."""
        from pvm_bench.pvm.train import TrainConfig, train

        if resume and overwrite:
            raise fail("--resume and --overwrite contradict each other; pass one of them")
        cfg = TrainConfig(
            model=model, data=data, out=str(out), split=split, layers=_layers(layers), hidden_size=dim,
            init_pvm=init_pvm, lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, batch_size=batch_size,
            grad_accum=grad_accum, epochs=epochs, max_steps=max_steps, save_every=save_every, seed=seed, dtype=dtype,
            device=device, gradient_checkpointing=gradient_checkpointing, limit=limit, resume=True if resume else None,
            overwrite=overwrite, progress=not quiet,
        )
        try:
            result = train(cfg)
        except UserError as exc:
            raise fail(str(exc)) from None
        import os

        if int(os.environ.get("RANK", "0")) != 0:
            return  # one summary line per run, not per data-parallel worker
        for note in result.notes:
            stdout.print(note, highlight=False, soft_wrap=True, markup=False)
        first = result.losses[0] if result.losses else float("nan")
        last = result.losses[-1] if result.losses else float("nan")
        stdout.print(
            f"trained {result.step}/{result.total_steps} steps in {result.seconds:.1f}s; loss {first:.4f} -> "
            f"{last:.4f}; "
            f"gates {', '.join(f'{k}: {v:.4f}' for k, v in result.gates.items())}; adapter in {result.out}",
            highlight=False,
        )

    @pvm_app.command("export")
    def export_command(
        model: Annotated[str, typer.Option(help="Base model (hub id or dir).")],
        pvm: Annotated[str, typer.Option(help="PVM adapter dir or reference checkpoint to export.")],
        out: Annotated[Path, typer.Option(help="Output directory.")],
        to: Annotated[
            str, typer.Option(help="'reference' (full checkpoint with pvm_layers in the config) or 'adapter'.")
        ] = "reference",
        dtype: Annotated[str, typer.Option(help="Saved dtype: auto (as loaded) | float32 | bfloat16.")] = "auto",
    ) -> None:
        """Write base + PVM as a reference-format checkpoint (or the PVM alone as an adapter)."""
        from pvm_bench import load_model
        from pvm_bench.models.loading import DTYPES
        from pvm_bench.pvm.io import export_reference, save_adapter

        if to not in ("reference", "adapter"):
            raise fail(f"--to must be 'reference' or 'adapter', not '{to}'")
        try:
            torch_dtype = None if dtype == "auto" else DTYPES[dtype]
            lm = load_model(model, pvm=pvm, dtype="float32" if dtype == "auto" else dtype, device="cpu")
            if to == "reference":
                path = export_reference(lm, out, dtype=torch_dtype)
            else:
                path = save_adapter(lm, out, dtype=torch_dtype)
        except (UserError, KeyError) as exc:
            raise fail(str(exc)) from None
        stdout.print(f"wrote {to} format to {path}", highlight=False)


# ---------------------------------------------------------------------------- bench
def default_bench_dim(hidden_size: int, head_dim: int) -> int:
    """The paper's d/H ratio (512/4096 = 1/8) rounded to whole heads: 128 for H=768."""
    return max(head_dim, round(hidden_size / 8 / head_dim) * head_dim)


def bench_pvm(
    model: str,
    *,
    new_tokens: int = 64,
    repeats: int = 7,
    dim: int | None = None,
    layers: list[int | float] | None = None,
    gate: float = 0.1,
    device: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """Decode tokens/s of the base model vs the same model with PVM, in one process.

    Runs alternate (base, pvm, pvm, base, ...) ``repeats`` times each so both see the same
    machine load; ``ratio`` is the median over repeats of pvm/base for each adjacent pair
    (``best_ratio`` compares the fastest runs). "base" has no PVM attached at all
    (blocks detached, hooks removed), "pvm" has the blocks with a non-zero gate. Decode time
    is measured from the first logits (end of prefill) to the last, over ``new_tokens - 1``
    forced steps (``min_new_tokens``).
    """
    import torch
    from PIL import Image
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

    from pvm_bench.models.generation import Request, encode, eos_ids
    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_pvm

    if threads:
        torch.set_num_threads(threads)
    lm = load_model(model, device=device)
    tc = lm.text_config
    d = dim or default_bench_dim(
        int(tc.hidden_size), int(getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads)
    )
    image = Image.new("RGB", (96, 96), (180, 40, 40))
    parts = [{"type": "image"}, {"type": "text", "text": "Describe the image in detail."}]
    enc, _ = encode(lm, [Request(messages=[{"role": "user", "content": parts}], images=[image])])
    eos = eos_ids(lm)
    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=eos or None, pad_token_id=lm.tokenizer.pad_token_id,
                              suppress_tokens=lm.suppress_token_ids() or None)

    class Clock(LogitsProcessor):
        """Wall time and this thread's CPU time at each step's logits (CPU time: with one thread,
        torch runs every op in the calling thread, so it barely moves with other load)."""

        def __init__(self) -> None:
            self.times: list[float] = []
            self.cpu: list[float] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if scores.device.type == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.cpu.append(time.thread_time())
            return scores

    handle = attach_pvm(lm, layers=layers, hidden_size=d, gate=gate)
    pvm_state = {k: v.clone() for k, v in handle.state_dict().items()}
    n_pvm = handle.num_parameters()
    pvm_layers = list(handle.layers)
    n_base = sum(p.numel() for p in lm.hf_model.parameters()) - n_pvm

    def set_variant(name: str) -> None:
        current = lm.pvm
        if name == "base" and current is not None:
            current.remove()
            lm.pvm = None
        elif name == "pvm" and current is None:
            h = attach_pvm(lm, layers=pvm_layers, hidden_size=d)
            h.load_state_dict(pvm_state)

    def run() -> tuple[float, float]:
        clock = Clock()
        with torch.inference_mode():
            lm.hf_model.generate(**enc, generation_config=config, logits_processor=LogitsProcessorList([clock]))
        steps = len(clock.times) - 1
        return steps / (clock.times[-1] - clock.times[0]), steps / max(clock.cpu[-1] - clock.cpu[0], 1e-9)

    speeds: dict[str, list[float]] = {"base": [], "pvm": []}
    cpu_speeds: dict[str, list[float]] = {"base": [], "pvm": []}
    for name in ("base", "pvm"):  # warm-up (allocator, kernels) for both
        set_variant(name)
        run()
    for r in range(repeats):
        order = ("base", "pvm") if r % 2 == 0 else ("pvm", "base")
        for name in order:
            set_variant(name)
            wall, cpu = run()
            speeds[name].append(wall)
            cpu_speeds[name].append(cpu)
    set_variant("pvm")
    best = {k: max(v) for k, v in speeds.items()}
    best_cpu = {k: max(v) for k, v in cpu_speeds.items()}
    result = {
        "model": model,
        "device": str(lm.device),
        "threads": torch.get_num_threads(),
        "base_params": n_base,
        "pvm_params": n_pvm,
        "pvm_share": n_pvm / n_base,
        "pvm_hidden_size": d,
        "pvm_layers": pvm_layers,
        "gate": gate,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "base_tokens_per_s": best["base"],
        "pvm_tokens_per_s": best["pvm"],
        # Adjacent base/pvm runs share the machine's state; the median of their ratios is far
        # less sensitive to load drift on a shared box than a ratio of bests.
        "ratio": statistics.median(p / b for p, b in zip(speeds["pvm"], speeds["base"])),
        "best_ratio": best["pvm"] / best["base"],
        # The same by CPU time of the generating thread (meaningful with one CPU thread).
        "base_tokens_per_cpu_s": best_cpu["base"],
        "pvm_tokens_per_cpu_s": best_cpu["pvm"],
        "cpu_ratio": statistics.median(p / b for p, b in zip(cpu_speeds["pvm"], cpu_speeds["base"])),
        "best_cpu_ratio": best_cpu["pvm"] / best_cpu["base"],
        "runs": speeds,
        "cpu_runs": cpu_speeds,
    }
    return result


def register_bench(bench: typer.Typer) -> None:
    """Add ``pvm`` to the ``pvm-bench bench`` command group."""

    @bench.command("pvm")
    def bench_pvm_command(
        model: ModelOption = None,
        random_size: RandomSizeOption = DEFAULT_SIZE,
        new_tokens: Annotated[int, typer.Option(help="Decode steps per run.")] = 64,
        repeats: Annotated[int, typer.Option(help="Alternating base/pvm run pairs.")] = 7,
        dim: Annotated[
            int | None, typer.Option(help="PVM latent size (default: hidden/8 in whole heads, the paper's ratio).")
        ] = None,
        layers: Annotated[str | None, typer.Option(help="PVM layers (default: paper layers or 1/4,1/2,3/4).")] = None,
        gate: Annotated[float, typer.Option(help="gate_alpha of every block (non-zero so the branch runs).")] = 0.1,
        device: DeviceOption = "auto",
        threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's).")] = None,
        json_path: Annotated[
            Path | None, typer.Option("--json", help="Also write the numbers to this JSON file.")
        ] = None,
    ) -> None:
        """Decode tokens/s: base vs PVM variant in one run (ratio = PVM / base over alternating paired runs)."""
        if gate == 0.0:
            raise fail("--gate 0 skips the branch entirely; pass a non-zero gate to measure its cost")
        try:
            with bench_model(model, random_size) as (model_dir, label):
                res = bench_pvm(model_dir, new_tokens=new_tokens, repeats=repeats, dim=dim, layers=_layers(layers),
                                gate=gate, device=device, threads=threads)
            res["model"] = label
        except UserError as exc:
            raise fail(str(exc)) from None
        stdout.print(
            f"{res['model']} on {res['device']} ({res['threads']} threads): base {res['base_params'] / 1e6:.1f}M "
            "params, "
            f"PVM d={res['pvm_hidden_size']} at layers {res['pvm_layers']} = {res['pvm_params'] / 1e6:.2f}M "
            f"({100 * res['pvm_share']:.2f}%), gate {res['gate']}",
            highlight=False,
        )
        stdout.print(
            f"decode tokens/s (best of {res['repeats']}, {res['new_tokens']} tokens): base "
            f"{res['base_tokens_per_s']:.1f}, "
            f"pvm {res['pvm_tokens_per_s']:.1f}; ratio {res['ratio']:.3f} (median of paired runs; best/best "
            f"{res['best_ratio']:.3f})",
            highlight=False,
        )
        if str(res["device"]).startswith("cpu"):
            stdout.print(
                f"decode tokens per CPU-second of the generating thread: base {res['base_tokens_per_cpu_s']:.1f}, "
                f"pvm {res['pvm_tokens_per_cpu_s']:.1f}; cpu ratio {res['cpu_ratio']:.3f} (median of paired runs; "
                f"best/best {res['best_cpu_ratio']:.3f}; steadier than wall time on a loaded machine with --threads 1)",
                highlight=False,
            )
        if json_path is not None:
            json_path.write_text(json.dumps(res, indent=2) + "\n")
