"""Optimizer and RNG state on disk without pickles: tensors in safetensors files, the rest in JSON.

:func:`save_state` writes ``optimizer.safetensors`` (every optimizer state tensor, keyed
``state.<param index>.<name>``) and ``rng.safetensors`` (CPU and CUDA generator states) into a
directory and returns the JSON part (param groups and non-tensor optimizer state) for the
caller's own state file; :func:`load_state` restores both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def save_state(directory: Path, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Write the optimizer's tensors and the RNG states under ``directory``; return the JSON part
    (``param_groups``, ``optimizer_scalars``)."""
    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{i}"] = s
    save_file(rng, str(directory / "rng.safetensors"))
    return {"param_groups": state["param_groups"], "optimizer_scalars": scalars}


def load_state(directory: Path, opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Restore what :func:`save_state` wrote (``saved``: its returned JSON part) into ``opt`` and
    the RNGs."""
    tensors = load_file(str(directory / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for key, value in saved["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = saved["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
    rng = load_file(str(directory / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        cuda = [rng[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in rng]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
