"""PVM-only supervised fine-tuning (the paper's SFT stage): base LLM and vision tower frozen.

Data: a Hugging Face dataset id or a local ``.json`` / ``.jsonl`` / ``.parquet`` file (or a
directory of them) with an image column (``image`` or ``images``: PIL images, ``{"bytes",
"path"}`` dicts as in hub parquet, file paths relative to the data file, or raw bytes), a
prompt column (``prompt``/``question``/``query``/``instruction``) and a response column
(``response``/``answer``/``output``/``solution``). Each sample becomes a one-turn chat built
with the processor's chat template; the loss covers only the response tokens (the prompt,
image tokens included, is masked with -100).

Optimisation: the shared loop :func:`pvm_bench.training.run_steps` (AdamW, linear warmup then
cosine, gradient accumulation, gradient clipping; the organism's recipe uses the same loop), bf16
autocast on GPUs (PVM master weights stay float32), optional gradient checkpointing. Data
parallel under ``torchrun``/``accelerate launch`` (WORLD_SIZE > 1; the process group is joined by
:func:`pvm_bench.runner.distributed.init_from_env`): each rank takes its shard of every global batch and
PVM gradients are all-reduced (averaged) before each step, which is what DDP would do for these
few parameters.

Checkpoints (``OUT/checkpoints/step-N``, see :mod:`pvm_bench.pvm.train_out`) hold the adapter
(``pvm_config.json`` + ``adapter.safetensors``), ``optimizer.safetensors`` (every optimizer state
tensor), ``trainer_state.json`` (step, param groups, config) and ``rng.safetensors`` — no pickles.
Resuming restores all of it; the learning rate and the data order are pure functions of (seed,
step), so a resumed run reproduces the uninterrupted loss curve exactly (same device and thread
settings). Every step is logged to ``OUT/train_log.jsonl`` with the loss, learning rate,
gradient norm and every layer's gate value. The final adapter is written to ``OUT``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pvm_bench.pvm.train_config import TrainConfig
from pvm_bench.pvm.train_data import (  # noqa: F401 (re-exported: the data API is part of pvm.train)
    IMAGE_COLUMNS,
    PROMPT_COLUMNS,
    RESPONSE_COLUMNS,
    Example,
    TrainError,
    _row_to_example,
    check_rows,
    load_rows,
)
from pvm_bench.pvm.train_out import (  # noqa: F401 (re-exported: OUT handling is part of pvm.train)
    TRAINING_FIELDS,
    config_differences,
    latest_checkpoint,
    load_checkpoint,
    prepare_out,
    prune_checkpoints,
    read_log,
    save_checkpoint,
)
from pvm_bench.runner.distributed import init_from_env
from pvm_bench.training import StepResult, make_optimizer, run_steps, sample_indices


@dataclass
class TrainResult:
    """What a run did: per-step losses (global mean), the last step and where the adapter is."""

    losses: list[float]
    step: int
    total_steps: int
    out: Path
    finished: bool
    resumed_from: int | None = None
    seconds: float = 0.0
    gates: dict[int, float] = field(default_factory=dict)
    #: What the user should know about how OUT was used (e.g. settings taken from a checkpoint).
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------- data
def build_batch(lm: Any, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """Processor inputs for ``examples`` (right padded) plus ``labels``: -100 on prompt and padding.

    The prompt is the chat template with the generation prompt; the full text is the template
    with the assistant turn, which must extend the prompt (true for ChatML-style templates;
    otherwise the response and the tokenizer's EOS are appended to the prompt).
    """
    processor = lm.processor
    prompts, fulls, images = [], [], []
    eos = lm.tokenizer.eos_token or ""
    for ex in examples:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in ex.images] + [{"type": "text", "text": ex.prompt}]
        msgs = [{"role": "user", "content": content}]
        prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        full = processor.apply_chat_template(msgs + [{"role": "assistant", "content": ex.response}], tokenize=False)
        if not full.startswith(prompt):
            full = prompt + ex.response + eos
        prompts.append(prompt)
        fulls.append(full)
        images.extend(ex.images)
    kw: dict[str, Any] = {"return_tensors": "pt", "padding": True, "padding_side": "right"}
    enc = processor(text=fulls, images=images or None, **kw)
    penc = processor(text=prompts, images=images or None, **kw)
    prompt_lens = penc["attention_mask"].sum(1)
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for i, n in enumerate(prompt_lens.tolist()):
        labels[i, :n] = -100
    out = dict(enc)
    out["labels"] = labels
    return out


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over response tokens, and their number."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:].to(shift_logits.device)
    n = int((shift_labels != -100).sum())
    loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100
    )
    return loss, n


@torch.no_grad()
def evaluate(lm: Any, examples: Sequence[Example], batch_size: int = 8) -> dict[str, float]:
    """Teacher-forced loss, response-token accuracy and first-response-token accuracy."""
    total, n_tok, correct, first_ok = 0.0, 0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = build_batch(lm, examples[start : start + batch_size])
        labels = batch.pop("labels")
        batch = {k: v.to(lm.device) for k, v in batch.items()}
        logits = lm.hf_model(**batch).logits
        loss, n = response_loss(logits, labels)
        total += float(loss) * n
        n_tok += n
        pred = logits[:, :-1].argmax(-1).cpu()
        tgt = labels[:, 1:]
        mask = tgt != -100
        correct += int(((pred == tgt) & mask).sum())
        first = mask.float().argmax(1)
        rows = torch.arange(tgt.shape[0])
        first_ok += int((pred[rows, first] == tgt[rows, first]).sum())
    return {"loss": total / max(n_tok, 1), "token_accuracy": correct / max(n_tok, 1),
            "first_token_accuracy": first_ok / max(len(examples), 1)}


# ------------------------------------------------------------------ training
def train(cfg: TrainConfig, lm: Any = None, rows: Sequence[dict[str, Any]] | None = None) -> TrainResult:
    """Train the PVM of ``cfg.model`` on ``cfg.data``; resumes from ``cfg.out`` when it has checkpoints.

    ``lm`` (an already loaded model without PVM) and ``rows`` (pre-loaded data rows) are for
    callers that hold them in memory (tests, notebooks, the organism's recipe); by default both
    are loaded from cfg. The optimisation is :func:`pvm_bench.training.run_steps`.
    """
    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_pvm, load_pvm, save_adapter

    t0 = time.perf_counter()
    dist = init_from_env()
    rank, world = dist.rank, dist.world
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a directory; pass a new or existing output directory")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    # What OUT holds and the data are checked before the (slow) model load.
    if rank == 0:
        resume, cfg = prepare_out(out, cfg, notes)
    else:
        resume = latest_checkpoint(out) if cfg.resume is not False else None
    if rows is None:
        rows, base_dir = load_rows(cfg.data, cfg.split, cfg.limit)
    else:
        rows, base_dir = list(rows), None
        check_rows(rows, "the training rows")
    device = dist.device(cfg.device)
    if device == "auto":
        device = "cpu"
    if lm is None:
        lm = load_model(cfg.model, dtype=cfg.dtype, device=device)
    on_gpu = lm.device.type == "cuda"
    torch.manual_seed(cfg.seed)

    if resume is not None:
        handle = load_pvm(lm, resume)
    elif cfg.init_pvm:
        handle = load_pvm(lm, cfg.init_pvm)
    else:
        handle = attach_pvm(lm, layers=cfg.layers, hidden_size=cfg.hidden_size, seed=cfg.seed)
    if on_gpu and lm.dtype != torch.float32:
        for block in handle.blocks.values():
            block.float()  # fp32 master weights; the forward runs under bf16 autocast
    params = handle.parameters()
    for p in params:
        p.requires_grad_(True)
    hf = lm.hf_model
    if cfg.gradient_checkpointing:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        hf.train()  # transformers only checkpoints in training mode; these models have no dropout in use
    else:
        hf.eval()

    global_batch = cfg.batch_size * cfg.grad_accum * world
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(rows) / global_batch))
    settings = cfg.loop(total_steps)
    opt = make_optimizer(params, settings)
    start = load_checkpoint(resume, opt) if resume is not None else 0
    stop = total_steps if cfg.stop_after is None else min(total_steps, cfg.stop_after)

    log_path = out / "train_log.jsonl"
    if rank == 0 and log_path.exists():
        # a killed run may have logged steps after its last checkpoint: drop them
        kept = [r for r in read_log(out) if r["step"] <= start]
        log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu and cfg.dtype != "float32" else None

    def micro_loss(step: int, micro: int) -> tuple[torch.Tensor, None]:
        # this rank's share of the global batch: a pure function of (seed, step, micro, rank)
        pos = ((step * cfg.grad_accum + micro) * world + rank) * cfg.batch_size
        idx = sample_indices(len(rows), cfg.seed, pos, cfg.batch_size)
        batch = build_batch(lm, [_row_to_example(rows[i], base_dir, i) for i in idx])
        labels = batch.pop("labels")
        batch = {k: v.to(lm.device) for k, v in batch.items()}
        if autocast is not None:
            with autocast:
                logits = hf(**batch).logits
        else:
            logits = hf(**batch).logits
        return response_loss(logits, labels)[0], None

    progress = None
    task = None
    if cfg.progress and rank == 0:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("pvm train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
        progress.start()
        task = progress.add_task("train", total=total_steps, completed=start, loss="-")

    def on_step(res: StepResult) -> None:
        if rank != 0:
            return
        record = {"step": res.step, "loss": res.loss, "lr": res.lr, "grad_norm": res.grad_norm,
                  "gates": {str(k): v for k, v in handle.gates().items()}}
        with open(log_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if progress is not None and task is not None:
            progress.update(task, advance=1, loss=f"{res.loss:.4f}")
        if cfg.save_every and res.step % cfg.save_every == 0 and res.step < total_steps:
            save_checkpoint(out / "checkpoints" / f"step-{res.step}", lm, opt, res.step, cfg, total_steps)
            prune_checkpoints(out, cfg.keep_checkpoints)

    try:
        losses = run_steps(
            params, settings, micro_loss, optimizer=opt, start=start, stop=stop, dist=dist, on_step=on_step
        )
    finally:
        if progress is not None:
            progress.stop()
    final_step = start + len(losses)
    finished = final_step >= total_steps
    if rank == 0:
        if finished:
            save_adapter(lm, out, dtype=torch.float32, extra={"train_step": final_step, "train_config": cfg.to_json()})
        elif not (cfg.save_every and final_step % cfg.save_every == 0):
            # stopped early: leave a resumable checkpoint at the stop point
            save_checkpoint(out / "checkpoints" / f"step-{final_step}", lm, opt, final_step, cfg, total_steps)
    if cfg.gradient_checkpointing:
        hf.gradient_checkpointing_disable()
    hf.eval()
    for p in params:
        p.requires_grad_(False)
    return TrainResult(losses=losses, step=final_step, total_steps=total_steps, out=out, finished=finished,
                       resumed_from=start if resume is not None else None, seconds=time.perf_counter() - t0,
                       gates=handle.gates(), notes=notes)
