"""What ``pvm train`` keeps in its output directory: checkpoints, the step log, and the decision
what to do with what OUT already holds (continue, refuse, or start over).

Checkpoints (``OUT/checkpoints/step-N``) hold the adapter, the optimizer and RNG state
(:mod:`pvm_bench.training.state`) and ``trainer_state.json`` (step, total steps, param groups,
the run's config). A checkpoint written before the shared loop also holds a ``scheduler`` entry,
which is ignored: the learning rate is a function of the step.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from pvm_bench.errors import load_guard
from pvm_bench.pvm.train_config import TrainConfig
from pvm_bench.pvm.train_data import TrainError
from pvm_bench.training.state import load_state, save_state


def save_checkpoint(ckpt: Path, lm: Any, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig,
                     total_steps: int) -> None:
    """Adapter + optimizer/RNG state (:mod:`pvm_bench.training.state`) + ``trainer_state.json``.
    The learning rate is a function of the step, so there is no scheduler state."""
    from pvm_bench.pvm.io import save_adapter

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_adapter(lm, tmp, dtype=torch.float32, extra={"train_step": step})
    trainer_state = {"step": step, "total_steps": total_steps, **save_state(tmp, opt), "config": cfg.to_json()}
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)  # atomic: a kill mid-save leaves the previous checkpoint intact


def load_checkpoint(ckpt: Path, opt: torch.optim.Optimizer) -> int:
    """Restore the optimizer and RNG state of ``ckpt``; return its step."""
    trainer_state = json.loads((ckpt / "trainer_state.json").read_text())
    load_state(ckpt, opt, trainer_state)
    return int(trainer_state["step"])


def latest_checkpoint(out: Path) -> Path | None:
    """The highest ``checkpoints/step-N`` under ``out`` (complete ones only)."""
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    # step-N.tmp is a save that a kill interrupted: never a checkpoint (the next save replaces it)
    done = [
        p
        for p in root.glob("step-*")
        if p.is_dir() and _STEP_DIR.match(p.name) and (p / "trainer_state.json").is_file()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


_STEP_DIR = re.compile(r"^step-\d+$")
#: TrainConfig fields that change what is trained; a checkpoint made with other values is not continued silently.
TRAINING_FIELDS = (
    "model",
    "data",
    "split",
    "layers",
    "hidden_size",
    "init_pvm",
    "lr",
    "weight_decay",
    "betas",
    "warmup_ratio",
    "max_grad_norm",
    "batch_size",
    "grad_accum",
    "epochs",
    "max_steps",
    "seed",
    "limit",
    "dtype",
)


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


def prepare_out(out: Path, cfg: TrainConfig, notes: list[str]) -> tuple[Path | None, TrainConfig]:
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
            raise TrainError(
                f"--resume: {out} has no checkpoint to continue (checkpoints/step-N); drop --resume to start"
            )
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
        keep = ("out", "stop_after", "save_every", "keep_checkpoints", "device", "gradient_checkpointing", "progress",
                "resume", "overwrite")
        names = {f.name for f in dataclasses.fields(cfg)}
        restored = {k: v for k, v in saved.items() if k in names and k not in keep}
        if isinstance(restored.get("betas"), list):
            restored["betas"] = tuple(restored["betas"])
        cfg = dataclasses.replace(cfg, **restored)
        notes.append(f"--resume: continuing {ckpt} with the checkpoint's own settings (ignored: {'; '.join(diffs)})")
    return ckpt, cfg


def prune_checkpoints(out: Path, keep: int) -> None:
    root = out / "checkpoints"
    ckpts = sorted((p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")),
                   key=lambda p: int(p.name.split("-")[1]))
    for p in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The per-step records of ``OUT/train_log.jsonl``."""
    path = Path(out) / "train_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
