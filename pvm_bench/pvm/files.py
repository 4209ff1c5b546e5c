"""Reading PVM files safely: JSON configs, safetensors weights, output directories.

Every read goes through :func:`pvm_bench.errors.load_guard`, so a corrupt, truncated, empty or
pickled file is one :class:`PVMFormatError` line naming it; configs are validated (a JSON object,
``layers`` a list of indices, the size an integer) and NaN/inf tensors are refused.
Nothing here unpickles anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from pvm_bench.errors import load_guard
from pvm_bench.pvm.attach import PVMAttachError

_PVM_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.pvm_block\.(.+)$")


class PVMFormatError(PVMAttachError):
    """A path is not a PVM adapter/checkpoint, or does not fit the model; the message says how to fix it."""


_FIX = "restore it from the original, or re-save it (pvm-bench pvm export / pvm train)"


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; anything else is one :class:`PVMFormatError` line naming the file."""
    with load_guard(what, path, _FIX):
        value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise PVMFormatError(f"{what} {path} is a JSON {type(value).__name__}, not an object; {_FIX}")
    return value


def _int_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


def _check_layer_fields(cfg: dict[str, Any], path: Path, layers_key: str, size_key: str) -> tuple[list[int], int]:
    """``(layers, pvm_hidden_size)`` of a PVM config, validated (types and presence)."""
    layers, size = cfg.get(layers_key), cfg.get(size_key)
    if layers is None:
        raise PVMFormatError(f"{path} lacks '{layers_key}' (the decoder layers holding PVM blocks); {_FIX}")
    if not _int_list(layers):
        raise PVMFormatError(
            f"{path}: '{layers_key}' must be a non-empty list of layer indices, not {json.dumps(layers)[:60]}; {_FIX}"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise PVMFormatError(f"{path}: '{size_key}' must be a positive integer, not {json.dumps(size)[:60]}; {_FIX}")
    return list(layers), size


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse NaN/inf parameters: they would silently turn every output into garbage."""
    for key, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise PVMFormatError(
                f"'{path}': tensor '{key}' has {bad} non-finite value(s) (NaN/inf) of {value.numel()}; the adapter is "
                "corrupt or its training diverged: use an earlier checkpoint or retrain"
            )


def _read_safetensors(file: Path, select: re.Pattern[str] | None = None) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    with load_guard("PVM weights", file, _FIX), safe_open(str(file), framework="pt") as fh:
        for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
            if select is None or select.search(key):
                out[key] = fh.get_tensor(key)
    return out


def _weight_files(p: Path) -> list[Path]:
    index = p / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json_object(index, "weight index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise PVMFormatError(f"weight index {index} has no 'weight_map' object; {_FIX}")
        names = sorted(set(map(str, weight_map.values())))
        return [p / n for n in names]
    files = sorted(p.glob("*.safetensors"))
    if not files:
        raise PVMFormatError(f"'{p}' has no .safetensors weights (pickled .bin checkpoints are not loaded)")
    return files


def read_checkpoint_tensors(path: str | Path, select: re.Pattern[str] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors model dir whose names match ``select`` (default: PVM tensors)."""
    pattern = select or _PVM_KEY
    out: dict[str, torch.Tensor] = {}
    for file in _weight_files(Path(path)):
        out.update(_read_safetensors(file, pattern))
    return out


def _output_dir(path: str | Path) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise PVMFormatError(f"output '{out}' is a file, not a directory; pass a new or existing directory")
    out.mkdir(parents=True, exist_ok=True)
    return out
