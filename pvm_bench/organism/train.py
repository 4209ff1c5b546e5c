"""Deterministic two-stage training of the model organism on CPU.

Stage 1 trains a tiny Qwen3-VL (every parameter, vision tower included) from scratch on the
``swatch_recall`` task (``"Count down from N to 1, then name the colour of the image."`` ->
``"N ... 2 1\\nAnswer: <colour>"``, a one-colour image, 12 colours with close pairs), loss on the
response tokens only. Counting is trained over the whole held-out range N in [0, 64] (most
examples have N > 16), so the model writes the filler correctly at every test length, but the
colour word is supervised only after N <= ``answer_max_n`` = 16: the model learns to read the
image at short range only, as an LVLM tuned on short answers. On the held-out ``test`` split
accuracy then falls with distance, and the only long-range dependency left at the answer is the
image (counting down stops locally at 1).

Stage 2 freezes the base, attaches PVM (decoder layers at 1/4, 1/2, 3/4 of the depth) and trains
only the PVM parameters with :func:`pvm_bench.pvm.train.train` on N uniform in [0, 64], answers
supervised at every distance: the side branch is what has to carry the image to long range.

Contract: :func:`train_organism` with the same :class:`TrainConfig` writes byte-identical
``base/model.safetensors`` and ``pvm/adapter.safetensors`` on the same machine and library
versions: every RNG is seeded, the data order is a fixed permutation, deterministic algorithms
are enforced and the thread count is pinned (CPU reductions may split work per thread).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pvm_bench.organism.examples import batch_metrics, collate, encode_examples, eval_by_n, forward
from pvm_bench.training import LoopSettings, StepResult, bucketed_batches, run_steps

#: The held-out diagnostic task the organism is trained for and evaluated on.
TASK = "swatch_recall"
#: Offset added to the user seed for the training data; the task's own splits use seeds 0..2.
DATA_SEED_OFFSET = 1000
#: The N range of the held-out ``test`` split; counting is trained over all of it.
FULL_RANGE = (0, 64)

Log = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything that determines the trained weights (stored in the manifest)."""

    seed: int = 0
    task: str = TASK  # a length-diagnostics task; its Design shapes every training example
    size: str = "small"
    # Stage 1 (base, all parameters).
    base_steps: int = 1100
    answer_weight: float = 10.0  # stage-1 loss weight of the colour-word tokens (see batch_metrics)
    base_lr: float = 4e-3
    n_short: int = 3000  # N in [0, short_max]
    n_long: int = 7000  # N in [short_max + 1, 64]
    short_max: int = 16
    answer_max_n: int | None = 16  # no loss on the colour word after counting further than this
    # Stage 2 (PVM only, base frozen).
    pvm_steps: int = 400
    pvm_lr: float = 1e-2
    n_pvm: int = 1600  # N uniform in [0, 64]
    pvm_hidden_size: int = 64
    pvm_layers: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    n_val: int = 128  # held-out (own seed) teacher-forced check logged after each stage
    batch_size: int = 16
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    # One thread: CPU time is shared with other jobs, where OpenMP spin-waits of 2+ threads
    # cost more than they gain on a model this small (measured: 2 s vs 7-14 s per step).
    threads: int = 1
    log_every: int = 25


def length_diagnostics() -> Any:
    """The built-in length-diagnostics task module (``tasks/length_diagnostics.py``, through the task
    loader), whose ``Design`` shapes every training example."""
    from pvm_bench.tasks.registry import builtin_task_module

    return builtin_task_module("length_diagnostics")


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic algorithms and a pinned thread count for the duration; restored after."""
    old_det = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass


# -------------------------------------------------------------------------------------- training
#: Stage-1 AdamW betas: a shorter second-moment memory than the default 0.999 suits a model
#: trained from scratch in ~1000 steps.
BASE_BETAS = (0.9, 0.98)


def base_settings(cfg: TrainConfig) -> LoopSettings:
    """Stage 1 of the recipe in the shared loop's shape (warmup ``ceil(warmup_frac * base_steps)``)."""
    return LoopSettings(steps=cfg.base_steps, lr=cfg.base_lr, weight_decay=cfg.weight_decay, betas=BASE_BETAS,
                        warmup_ratio=cfg.warmup_frac, max_grad_norm=1.0)


def train_base(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    data: list[dict[str, torch.Tensor]],
    *,
    cfg: TrainConfig,
    pad_id: int,
    log: Log,
    stage: str = "base",
) -> list[dict[str, float]]:
    """Stage 1 with the shared loop (:func:`pvm_bench.training.run_steps`) over fixed
    length-bucketed batches; returns the history logged every ``cfg.log_every`` steps."""
    settings = base_settings(cfg)
    batches = bucketed_batches([len(d["input_ids"]) for d in data], settings.steps, cfg.batch_size, cfg.seed)
    history: list[dict[str, float]] = []
    window = {"loss": 0.0, "n": 0, "hits": 0, "rows": 0}
    start = time.perf_counter()

    def micro_loss(step: int, _micro: int) -> tuple[torch.Tensor, tuple[int, int]]:
        batch = collate([data[i] for i in batches[step]], pad_id)
        loss, correct = batch_metrics(forward(model, batch).logits, batch, cfg.answer_weight)
        answered = batch["answer_mask"].any(dim=1)
        return loss, (int(correct[answered].sum()), int(answered.sum()))

    def on_step(res: StepResult) -> None:
        window["loss"] += res.loss
        window["n"] += 1
        for hits, rows in res.aux:
            window["hits"] += hits
            window["rows"] += rows
        if res.step % cfg.log_every == 0 or res.step == settings.steps:
            rec = {"step": res.step, "loss": window["loss"] / window["n"],
                   "answer_acc": window["hits"] / max(window["rows"], 1), "elapsed_s": time.perf_counter() - start}
            history.append(rec)
            log(
                f"[{stage}] step {res.step}/{settings.steps}  loss {rec['loss']:.4f}  answer acc "
                f"{rec['answer_acc']:.3f}  "
                f"({rec['elapsed_s']:.0f}s)"
            )
            window.update(loss=0.0, n=0, hits=0, rows=0)

    run_steps(params, settings, micro_loss, on_step=on_step)
    return history


def stage2_pvm(
    base_dir: Path,
    pvm_dir: Path,
    cfg: TrainConfig,
    ld: Any,
    design: Any,
    dseed: int,
    val: list[dict[str, torch.Tensor]],
    pad_id: int,
    log: Log,
) -> tuple[list[dict[str, float]], dict[str, float], dict[int, float]]:
    """PVM-only SFT of the frozen base in ``base_dir`` via :func:`pvm_bench.pvm.train.train`.

    ``design`` (the task's Design) shapes the training rows. Writes ``pvm_dir`` (``adapter.safetensors`` +
    ``pvm_config.json`` with machine-independent fields: no temporary paths). Returns (loss history, held-out eval,
    gates).
    """
    from safetensors.torch import load_file

    from pvm_bench.models.loading import load_model
    from pvm_bench.pvm import attach_from_path
    from pvm_bench.pvm.train import TrainConfig as PVMTrainConfig
    from pvm_bench.pvm.train import train as pvm_train

    lm = load_model(str(base_dir), dtype="float32", device="cpu")
    rows = [
        {"image": ex["image"], "prompt": ex["prompt"], "response": ex["response"]}
        for ex in ld.make_examples(cfg.n_pvm, dseed + 3, FULL_RANGE, design)
    ]
    work = pvm_dir.parent / (pvm_dir.name + ".train")
    shutil.rmtree(work, ignore_errors=True)
    tcfg = PVMTrainConfig(
        model=str(base_dir),
        data="<in-memory colour_recall rows>",
        out=str(work),
        layers=list(cfg.pvm_layers),
        hidden_size=cfg.pvm_hidden_size,
        lr=cfg.pvm_lr,
        weight_decay=cfg.weight_decay,
        warmup_ratio=0.1,
        batch_size=cfg.batch_size,
        max_steps=cfg.pvm_steps,
        seed=cfg.seed,
        dtype="float32",
        device="cpu",
        resume=False,
        progress=False,
    )
    log(
        f"[pvm] layers {cfg.pvm_layers}, d={cfg.pvm_hidden_size}, {cfg.pvm_steps} steps on {len(rows)} rows (N in "
        f"{FULL_RANGE})"
    )
    result = pvm_train(tcfg, lm=lm, rows=rows)
    history = []
    for i in range(0, len(result.losses), cfg.log_every):
        chunk = result.losses[i : i + cfg.log_every]
        history.append({"step": i + len(chunk), "loss": sum(chunk) / len(chunk)})
        log(f"[pvm] step {i + len(chunk)}/{cfg.pvm_steps}  loss {history[-1]['loss']:.4f}")
    log(f"[pvm] trained in {result.seconds:.0f}s")
    pvm_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "adapter.safetensors", pvm_dir / "adapter.safetensors")
    canonicalize_safetensors(pvm_dir / "adapter.safetensors")
    config = json.loads((work / "pvm_config.json").read_text())
    config["base_model"] = "pvm-bench-organism-base"
    config.pop("train_config", None)  # holds temporary paths; the organism manifest has the recipe
    config["training"] = {
        "recipe": "pvm_bench.organism.train",
        "seed": cfg.seed,
        "steps": cfg.pvm_steps,
        "lr": cfg.pvm_lr,
        "batch_size": cfg.batch_size,
        "rows": len(rows),
    }
    (pvm_dir / "pvm_config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    # Evaluate what ships: a fresh base with the written adapter attached.
    lm = load_model(str(base_dir), dtype="float32", device="cpu")
    handle = attach_from_path(lm, pvm_dir)
    written = load_file(str(pvm_dir / "adapter.safetensors"))
    assert all(torch.equal(v, written[k]) for k, v in handle.state_dict().items())
    return history, eval_by_n(lm.hf_model, val, pad_id), handle.gates()


def canonicalize_safetensors(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, in place; tensor bytes are untouched.

    safetensors serialises ``__metadata__`` from a hash map, so a file with two or more metadata
    keys (the PVM adapter has ``format`` and ``pvm_bench``) gets a different byte order from run
    to run. Sorting the header makes equal tensors give equal file hashes. The header stays valid:
    data offsets are relative to the end of the header, which is space-padded to 8 bytes.
    """
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_organism(out: str | Path, cfg: TrainConfig | None = None, log: Log = print) -> dict[str, Any]:
    """Train both stages into ``out/base`` (model dir) and ``out/pvm`` (adapter dir).

    Returns a manifest dict (config, per-file sha256, histories, timings) that is also written to
    ``out/MANIFEST.json``. Deterministic in ``cfg`` (see the module docstring).
    """
    from pvm_bench.models.loading import load_model
    from pvm_bench.testing import build_tiny_model

    cfg = cfg or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ld = length_diagnostics()
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {"config": asdict(cfg), "task": cfg.task}
    with deterministic(cfg.threads):
        seed_everything(cfg.seed)
        base_dir = out / "base"
        build_tiny_model("qwen3_vl", base_dir, seed=cfg.seed, size=cfg.size)
        lm = load_model(str(base_dir), dtype="float32", device="cpu")
        model = lm.hf_model
        pad_id = int(lm.tokenizer.pad_token_id)
        dseed = DATA_SEED_OFFSET + cfg.seed * 10
        design = ld.task_design(cfg.task)
        examples = ld.make_examples(cfg.n_short, dseed, (0, cfg.short_max), design) + ld.make_examples(
            cfg.n_long, dseed + 1, (cfg.short_max + 1, FULL_RANGE[1]), design
        )
        data = encode_examples(lm.processor, examples, cfg.answer_max_n)
        val = encode_examples(lm.processor, ld.make_examples(cfg.n_val, dseed + 2, FULL_RANGE, design))
        log(
            f"[data] {len(data)} stage-1 examples ({cfg.n_short} with N<={cfg.short_max}, {cfg.n_long} longer), "
            f"{time.perf_counter() - t0:.0f}s"
        )

        # Stage 1: every parameter, from scratch.
        model.requires_grad_(True)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        log(f"[base] {sum(p.numel() for p in params) / 1e6:.2f}M parameters")
        t1 = time.perf_counter()
        hist_base = train_base(model, params, data, cfg=cfg, pad_id=pad_id, log=log)
        model.eval()
        model.requires_grad_(False)
        base_eval = eval_by_n(model, val, pad_id)
        log(f"[base] held-out teacher-forced answer accuracy by N: {base_eval}")
        model.save_pretrained(base_dir)
        manifest["base_train_s"] = time.perf_counter() - t1

        # Stage 2: reload the saved base (exactly what ships), freeze it, train PVM only with the
        # library's PVM SFT entry point (pvm_bench.pvm.train), then ship its adapter files.
        t2 = time.perf_counter()
        seed_everything(cfg.seed + 1)
        hist_pvm, pvm_eval, gates = stage2_pvm(base_dir, out / "pvm", cfg, ld, design, dseed, val, pad_id, log)
        log(f"[pvm] held-out teacher-forced answer accuracy by N: {pvm_eval}; gates {gates}")
        manifest["pvm_train_s"] = time.perf_counter() - t2

    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "MANIFEST.json")
    manifest["sha256"] = {str(p.relative_to(out)): sha256_file(p) for p in files}
    manifest["history"] = {"base": hist_base, "pvm": hist_pvm}
    manifest["teacher_forced_eval"] = {"base": base_eval, "pvm": pvm_eval}
    manifest["total_s"] = time.perf_counter() - t0
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(
        f"[done] {out} in {manifest['total_s']:.0f}s; base {manifest['sha256']['base/model.safetensors'][:16]}, "
        f"pvm {manifest['sha256']['pvm/adapter.safetensors'][:16]}"
    )
    return manifest
