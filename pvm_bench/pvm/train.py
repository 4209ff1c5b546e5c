"""PVM-only supervised fine-tuning (the paper's SFT stage): base LLM and vision tower frozen.

Data: a Hugging Face dataset id or a local ``.json`` / ``.jsonl`` / ``.parquet`` file (or a
directory of them) with an image column (``image`` or ``images``: PIL images, ``{"bytes",
"path"}`` dicts as in hub parquet, file paths relative to the data file, or raw bytes), a
prompt column (``prompt``/``question``/``query``/``instruction``) and a response column
(``response``/``answer``/``output``/``solution``). Each sample becomes a one-turn chat built
with the processor's chat template; the loss covers only the response tokens (the prompt,
image tokens included, is masked with -100).

Optimisation: AdamW, cosine schedule with linear warmup, gradient accumulation, gradient
clipping, bf16 autocast on GPUs (PVM master weights stay float32), optional gradient
checkpointing. Data parallel under ``torchrun``/``accelerate launch``: when
``torch.distributed`` is initialised (or WORLD_SIZE > 1) each rank takes its shard of every
global batch and PVM gradients are all-reduced (averaged) before each step, which is what DDP
would do for these few parameters.

Checkpoints (``OUT/checkpoints/step-N``) hold the adapter (``pvm_config.json`` +
``adapter.safetensors``), ``optimizer.safetensors`` (every optimizer state tensor),
``trainer_state.json`` (step, scheduler, param groups, data position) and ``rng.safetensors``
— no pickles. Resuming restores all of it, and the data order is a pure function of (seed,
step), so a resumed run reproduces the uninterrupted loss curve exactly (same device and
thread settings). Every step is logged to ``OUT/train_log.jsonl`` with the loss, learning
rate, gradient norm and every layer's gate value. The final adapter is written to ``OUT``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from pvm_bench.errors import load_guard
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
    loss = F.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1), ignore_index=-100)
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


# ------------------------------------------------------------------ distributed
def _dist() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun when needed."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    if world == 1:
        return
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


# ------------------------------------------------------------------ schedule & order
def cosine_with_warmup(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warmup over ``warmup_ratio * total`` steps, then cosine to 0."""
    warmup = math.ceil(warmup_ratio * total_steps)

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return fn


def sample_indices(n_rows: int, seed: int, start: int, count: int) -> list[int]:
    """Positions ``start .. start+count-1`` of the infinite stream of per-epoch permutations.

    Pure function of (seed, position): resuming needs no data-loader state.
    """
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n_rows)
        perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        take = min(count - len(out), n_rows - offset)
        out.extend(perm[offset : offset + take])
        pos += take
    return out


# ------------------------------------------------------------------ checkpoints
def _save_checkpoint(ckpt: Path, lm: Any, opt: torch.optim.Optimizer, sched: Any, step: int,
                     cfg: TrainConfig, total_steps: int) -> None:
    from pvm_bench.pvm.io import save_adapter

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_adapter(lm, tmp, dtype=torch.float32, extra={"train_step": step})
    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{i}"] = s
    save_file(rng, str(tmp / "rng.safetensors"))
    trainer_state = {
        "step": step,
        "total_steps": total_steps,
        "param_groups": state["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"},
        "config": cfg.to_json(),
    }
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)  # atomic: a kill mid-save leaves the previous checkpoint intact


def _load_optimizer(ckpt: Path, opt: torch.optim.Optimizer, sched: Any) -> int:
    trainer_state = json.loads((ckpt / "trainer_state.json").read_text())
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in trainer_state["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = trainer_state["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    sched.load_state_dict({**trainer_state["scheduler"], "lr_lambdas": [None] * len(opt.param_groups)})
    rng = load_file(str(ckpt / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        cuda = [rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in rng]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    return int(trainer_state["step"])


def latest_checkpoint(out: Path) -> Path | None:
    """The highest ``checkpoints/step-N`` under ``out`` (complete ones only)."""
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    # step-N.tmp is a save that a kill interrupted: never a checkpoint (the next save replaces it)
    done = [p for p in root.glob("step-*") if p.is_dir() and _STEP_DIR.match(p.name) and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


_STEP_DIR = re.compile(r"^step-\d+$")
#: TrainConfig fields that change what is trained; a checkpoint made with other values is not continued silently.
TRAINING_FIELDS = ("model", "data", "split", "layers", "hidden_size", "init_pvm", "lr", "weight_decay", "betas",
                   "warmup_ratio", "max_grad_norm", "batch_size", "grad_accum", "epochs", "max_steps", "seed", "limit", "dtype")


def config_differences(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """``field saved -> requested`` for every training field that differs."""
    now = cfg.to_json()
    out = []
    for key in TRAINING_FIELDS:
        old, new = saved.get(key), now.get(key)
        if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
            old, new = list(old), list(new)
        if key in ("model", "data", "init_pvm") and isinstance(old, str) and isinstance(new, str) and old != new:
            if Path(old).expanduser().exists() and Path(old).expanduser().resolve() == Path(new).expanduser().resolve():
                continue
        if old != new:
            out.append(f"{key} {old} -> {new}")
    return out


def _prepare_out(out: Path, cfg: TrainConfig, notes: list[str]) -> tuple[Path | None, TrainConfig]:
    """Decide what to do with what OUT already holds: the checkpoint to resume (or None) and the
    config to train with. Refuses to continue, or to overwrite, work made with other settings
    unless the user said so (``resume=True`` / ``overwrite=True``)."""
    from pvm_bench.pvm.io import ADAPTER_CONFIG

    if cfg.overwrite:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        for name in ("train_log.jsonl", ADAPTER_CONFIG, "adapter.safetensors"):
            (out / name).unlink(missing_ok=True)
        return None, cfg
    if cfg.resume is False:
        return None, cfg
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        if cfg.resume:
            raise TrainError(f"--resume: {out} has no checkpoint to continue (checkpoints/step-N); drop --resume to start")
        final = out / ADAPTER_CONFIG
        if final.is_file():
            with load_guard("adapter config", final, "pass --overwrite to replace it"):
                saved = json.loads(final.read_text(encoding="utf-8")).get("train_config") or {}
            diffs = config_differences(saved, cfg) if saved else ["(no train_config recorded)"]
            if diffs:
                raise TrainError(
                    f"{out} already holds a trained adapter made with other settings ({'; '.join(diffs)}); "
                    "pass --overwrite to replace it, or another --out"
                )
        return None, cfg
    with load_guard("checkpoint state", ckpt / "trainer_state.json", "delete that checkpoint dir or pass --overwrite"):
        saved = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))["config"]
    diffs = config_differences(saved, cfg)
    if diffs and not cfg.resume:
        raise TrainError(
            f"{out} holds a checkpoint ({ckpt.name}) made with other settings ({'; '.join(diffs)}); pass --resume to "
            "continue it with its own settings, --overwrite to start over, or another --out"
        )
    if diffs:  # explicit --resume: the checkpoint's settings win, so the adapter describes what it holds
        keep = {k: getattr(cfg, k) for k in ("out", "stop_after", "save_every", "keep_checkpoints", "device",
                                              "gradient_checkpointing", "progress", "resume", "overwrite")}
        fields = {f for f in TrainConfig.__dataclass_fields__}
        restored = {k: v for k, v in saved.items() if k in fields}
        if isinstance(restored.get("betas"), list):
            restored["betas"] = tuple(restored["betas"])
        cfg = TrainConfig(**{**restored, **keep})
        notes.append(f"--resume: continuing {ckpt} with the checkpoint's own settings (ignored: {'; '.join(diffs)})")
    return ckpt, cfg


# ------------------------------------------------------------------ training
def train(cfg: TrainConfig, lm: Any = None, rows: Sequence[dict[str, Any]] | None = None) -> TrainResult:
    """Train the PVM of ``cfg.model`` on ``cfg.data``; resumes from ``cfg.out`` when it has checkpoints.

    ``lm`` (an already loaded model without PVM) and ``rows`` (pre-loaded data rows) are for
    callers that hold them in memory (tests, notebooks); by default both are loaded from cfg.
    """
    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_pvm, load_pvm, save_adapter

    t0 = time.perf_counter()
    rank, world = _dist()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file, not a directory; pass a new or existing output directory")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    # What OUT holds and the data are checked before the (slow) model load.
    if rank == 0:
        resume, cfg = _prepare_out(out, cfg, notes)
    else:
        resume = latest_checkpoint(out) if cfg.resume is not False else None
    if rows is None:
        rows, base_dir = load_rows(cfg.data, cfg.split, cfg.limit)
    else:
        rows, base_dir = list(rows), None
        check_rows(rows, "the training rows")
    device = cfg.device
    if device == "auto":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
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
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(total_steps, cfg.warmup_ratio))
    start = 0
    if resume is not None:
        start = _load_optimizer(resume, opt, sched)
    stop = total_steps if cfg.stop_after is None else min(total_steps, cfg.stop_after)

    log_path = out / "train_log.jsonl"
    if rank == 0 and log_path.exists():
        # a killed run may have logged steps after its last checkpoint: drop them
        kept = [r for r in read_log(out) if r["step"] <= start]
        log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    losses: list[float] = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu and cfg.dtype != "float32" else None

    progress = None
    task = None
    if cfg.progress and rank == 0:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("pvm train"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
        progress.start()
        task = progress.add_task("train", total=total_steps, completed=start, loss="-")
    try:
        for step in range(start, stop):
            opt.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), dtype=torch.float64)
            for micro in range(cfg.grad_accum):
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
                loss, _ = response_loss(logits, labels)
                (loss / cfg.grad_accum).backward()
                step_loss += float(loss.detach()) / cfg.grad_accum
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            if world > 1:
                loss_t = step_loss.to(grads[0].device, torch.float32)
                _all_reduce_mean(grads + [loss_t], world)
                step_loss = loss_t.double().cpu()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)) if cfg.max_grad_norm else 0.0
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            value = float(step_loss)
            losses.append(value)
            if rank == 0:
                record = {"step": step + 1, "loss": value, "lr": lr, "grad_norm": grad_norm,
                          "gates": {str(k): v for k, v in handle.gates().items()}}
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if progress is not None:
                    progress.update(task, advance=1, loss=f"{value:.4f}")
                done = step + 1
                if cfg.save_every and done % cfg.save_every == 0 and done < total_steps:
                    _save_checkpoint(out / "checkpoints" / f"step-{done}", lm, opt, sched, done, cfg, total_steps)
                    _prune(out, cfg.keep_checkpoints)
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
            _save_checkpoint(out / "checkpoints" / f"step-{final_step}", lm, opt, sched, final_step, cfg, total_steps)
    if cfg.gradient_checkpointing:
        hf.gradient_checkpointing_disable()
    hf.eval()
    for p in params:
        p.requires_grad_(False)
    return TrainResult(losses=losses, step=final_step, total_steps=total_steps, out=out, finished=finished,
                       resumed_from=start if resume is not None else None, seconds=time.perf_counter() - t0,
                       gates=handle.gates(), notes=notes)


def _prune(out: Path, keep: int) -> None:
    root = out / "checkpoints"
    ckpts = sorted((p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")),
                   key=lambda p: int(p.name.split("-")[1]))
    for p in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The per-step records of ``OUT/train_log.jsonl``."""
    path = Path(out) / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
