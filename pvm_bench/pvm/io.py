"""Saving and loading PVM weights: adapter directories and full reference-format checkpoints.

Two formats are read (detected by :func:`detect_format`):

* **adapter** directory: ``pvm_config.json`` (base model id and fingerprint, layers,
  pvm_hidden_size, dtype, version) + ``adapter.safetensors`` holding only the PVM tensors under
  the reference names ``model.language_model.layers.{i}.pvm_block.*``;
* **full** reference checkpoint: an ordinary transformers model directory whose config has
  ``text_config.pvm_layers`` / ``text_config.pvm_hidden_size`` and whose safetensors hold the
  PVM tensors under the same names next to the base weights.

:func:`export_reference` writes the full format back. Nothing here unpickles anything.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from pvm_bench.errors import load_guard
from pvm_bench.pvm.attach import PVMAttachError, PVMHandle, attach_pvm
from pvm_bench.pvm.files import (
    _FIX,
    _PVM_KEY,
    PVMFormatError,
    _check_finite,
    _check_layer_fields,
    _output_dir,
    _read_json_object,
    _read_safetensors,
    _weight_files,
    read_checkpoint_tensors,
)

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

ADAPTER_CONFIG = "pvm_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_VERSION = 1
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _handle_of(obj: LoadedModel | PVMHandle | nn.Module) -> PVMHandle:
    if isinstance(obj, PVMHandle):
        return obj
    handle = getattr(obj, "pvm", None) or getattr(obj, "_pvm_handle", None)
    if handle is None:
        raise PVMFormatError("no PVM is attached to this model; attach or load one first (attach_pvm / load_pvm)")
    return handle


def _hf_of(obj: LoadedModel | nn.Module) -> nn.Module:
    return obj.hf_model if hasattr(obj, "hf_model") else obj  # type: ignore[return-value]


def _text_config_dict(config: dict[str, Any]) -> dict[str, Any]:
    tc = config.get("text_config")
    return tc if isinstance(tc, dict) else config


def detect_format(path: str | Path) -> Literal["adapter", "full"]:
    """``"adapter"`` or ``"full"``; raises :class:`PVMFormatError` for anything else."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise PVMFormatError(f"PVM path '{p}' is not a directory; pass an adapter dir or a reference checkpoint dir")
    if (p / ADAPTER_CONFIG).is_file():
        if not (p / ADAPTER_WEIGHTS).is_file():
            raise PVMFormatError(f"'{p}' has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}; the adapter is incomplete")
        return "adapter"
    cfg_path = p / "config.json"
    if cfg_path.is_file():
        tc = _text_config_dict(_read_json_object(cfg_path, "checkpoint config"))
        if tc.get("pvm_layers") is not None and tc.get("pvm_hidden_size") is not None:
            return "full"
        raise PVMFormatError(
            f"'{p}' is a model directory without PVM (config has no text_config.pvm_layers / pvm_hidden_size); "
            "pass a PVM adapter dir or a reference-format PVM checkpoint"
        )
    raise PVMFormatError(f"'{p}' has neither {ADAPTER_CONFIG} (adapter) nor config.json (reference checkpoint)")


def _canonical(tensors: dict[str, torch.Tensor], handle: PVMHandle) -> dict[str, torch.Tensor]:
    """Rename ``...layers.{i}.pvm_block.x`` keys (any prefix) to the handle's reference names."""
    out = {}
    for key, value in tensors.items():
        m = _PVM_KEY.search(key)
        if m is None:
            raise PVMFormatError(f"tensor '{key}' is not a PVM tensor (expected '...layers.N.pvm_block.*')")
        out[handle.key(int(m.group(1)), m.group(2))] = value
    return out


def _intermediate_from(tensors: dict[str, torch.Tensor]) -> int | None:
    for key, value in tensors.items():
        if key.endswith("mlp.gate_proj.weight"):
            return int(value.shape[0])
    return None


def _base_signature(hf_model: nn.Module) -> dict[str, Any]:
    tc = hf_model.config.get_text_config()
    return {
        "model_type": hf_model.config.model_type,
        "hidden_size": int(tc.hidden_size),
        "num_hidden_layers": int(tc.num_hidden_layers),
        "vocab_size": int(getattr(tc, "vocab_size", 0) or 0),
    }


def _is_hub_id(source: str | None) -> bool:
    if not source:
        return False
    from pvm_bench.models.loading import is_local_source

    return not is_local_source(source)


def save_adapter(model: LoadedModel | PVMHandle | nn.Module, out_dir: str | Path, *, dtype: torch.dtype | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``pvm_config.json`` + ``adapter.safetensors`` (only PVM tensors, reference names).

    ``dtype`` converts the saved tensors (default: as attached). ``extra`` adds JSON fields
    (e.g. training metadata) to the config. Returns ``out_dir``.
    """
    handle = _handle_of(model)
    out = _output_dir(out_dir)
    tensors = {
        k: v.detach().to("cpu", dtype=dtype or v.dtype).contiguous().clone() for k, v in handle.state_dict().items()
    }
    saved_dtype = next(iter(tensors.values())).dtype
    save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt", "pvm_bench": "adapter"})
    from pvm_bench import __version__

    config = {
        "format": "pvm-bench-adapter",
        "version": ADAPTER_VERSION,
        "base_model": handle.base_model_id,
        "base_fingerprint": handle.base_fingerprint,
        "base": _base_signature(handle.hf_model),
        "layers": list(handle.layers),
        "pvm_hidden_size": handle.hidden_size,
        "intermediate_size": handle.shape.intermediate_size,
        "dtype": _DTYPE_NAMES.get(saved_dtype, str(saved_dtype).removeprefix("torch.")),
        "pvm_bench_version": __version__,
        **(extra or {}),
    }
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _check_adapter_base(config: dict[str, Any], model: LoadedModel | nn.Module, path: Path) -> None:
    hf = _hf_of(model)
    want = config.get("base") or {}
    have = _base_signature(hf)
    diffs = [f"{k} {want[k]} != {have[k]}" for k in have if k in want and want[k] != have[k]]
    base_id = config.get("base_model")
    if diffs:
        raise PVMFormatError(
            f"adapter '{path}' was trained on base model '{base_id}' ({', '.join(diffs)} in the loaded model); "
            f"load it on '{base_id}'"
        )
    fp_want = config.get("base_fingerprint")
    fp_have = getattr(model, "fingerprint", None)
    source = getattr(model, "source", None)
    comparable = _is_hub_id(base_id) == _is_hub_id(source)  # hub-id and local-dir fingerprints differ by design
    if fp_want and fp_have and comparable and fp_want != fp_have:
        raise PVMFormatError(
            f"adapter '{path}' was trained on base model '{base_id}' (fingerprint {fp_want}) but the loaded "
            f"model is '{source}' (fingerprint {fp_have}); load the adapter on its base model, or pass "
            "check_base=False if you know the weights are the same"
        )


def _check_full_base(path: Path, model: LoadedModel | nn.Module) -> None:
    """A full checkpoint carries its own base weights: refuse to graft its PVM onto another base."""
    source = getattr(model, "source", None)
    if source is not None and Path(source).expanduser().resolve() == path.resolve():
        return
    hf = _hf_of(model)
    want = _text_config_dict(_read_json_object(path / "config.json", "checkpoint config"))
    have = _base_signature(hf)
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        if key in want and int(want[key]) != have[key]:
            raise PVMFormatError(
                f"checkpoint '{path}' has {key} {want[key]} but the loaded model '{source}' has {have[key]}; "
                f"load the checkpoint itself as the model: load_model('{path}', pvm='{path}')"
            )
    # Norm weights and the first row of every decoder matrix are cheap to read (safetensors
    # slices) and change under any fine-tuning of the base (the paper's GRPO stage trains the
    # LLM too), so together they tell whether the checkpoint's base is this model.
    own = dict(hf.named_parameters())
    pattern = re.compile(
        r"layers\.\d+\.(input_layernorm|post_attention_layernorm|self_attn\.\w+_proj|mlp\.\w+_proj)\.weight$"
    )
    for file in _weight_files(path):
        with load_guard("checkpoint weights", file, _FIX), safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                if ".pvm_block." in key or not pattern.search(key) or key not in own:
                    continue
                mine = own[key].detach()
                theirs = fh.get_slice(key)[0:1] if mine.dim() > 1 else fh.get_tensor(key)
                mine = mine[0:1] if mine.dim() > 1 else mine
                if tuple(theirs.shape) != tuple(mine.shape) or not torch.equal(mine.cpu().to(theirs.dtype), theirs):
                    raise PVMFormatError(
                        f"checkpoint '{path}' has different base weights than the loaded model '{source}' "
                        f"(first difference: '{key}'); load the checkpoint itself as the model: "
                        f"load_model('{path}', pvm='{path}')"
                    )


def _validate_shapes(model: LoadedModel | nn.Module, tensors: dict[str, torch.Tensor], layers: list[int],
                     d: int, path: Path) -> None:
    """Check names and shapes against a meta-device block before the model is touched, so a
    bad adapter leaves any PVM already attached in place."""
    from pvm_bench.pvm.block import PVMBlock, PVMShape

    hf = _hf_of(model)
    depth = int(getattr(hf.config.get_text_config(), "num_hidden_layers", 0) or 0)
    outside = [i for i in layers if depth and not 0 <= i < depth]
    if outside:
        raise PVMFormatError(
            f"'{path}': PVM layers {outside} do not exist in the loaded model ({depth} decoder layers, "
            f"0..{depth - 1}); "
            "the adapter was made for another base model: load it on its own base"
        )
    try:
        shape = PVMShape.from_text_config(hf.config.get_text_config(), d)
    except ValueError as exc:
        raise PVMFormatError(f"'{path}': {exc}") from None
    inter = _intermediate_from(tensors)
    if inter is not None:
        shape = PVMShape(**{**shape.to_dict(), "intermediate_size": inter})
    with torch.device("meta"):
        expected = {n: tuple(t.shape) for n, t in PVMBlock(shape).state_dict().items()}
    found: dict[tuple[int, str], torch.Tensor] = {}
    for key, value in tensors.items():
        m = _PVM_KEY.search(key)
        if m is None:
            raise PVMFormatError(f"'{path}': tensor '{key}' is not a PVM tensor (expected '...layers.N.pvm_block.*')")
        found[(int(m.group(1)), m.group(2))] = value
        want = expected.get(m.group(2))
        if want is None or int(m.group(1)) not in layers:
            raise PVMFormatError(
                f"'{path}': unexpected PVM tensor '{key}' (layers {layers}, known names {sorted(expected)})"
            )
        if tuple(value.shape) != want and not (value.numel() == 1 and math.prod(want) == 1):
            raise PVMFormatError(
                f"'{path}': tensor '{key}' has shape {tuple(value.shape)} but this model needs {want} "
                f"(pvm_hidden_size {d}, base hidden size {shape.hidden_size}); the adapter was made for a "
                "different base model or PVM size: load it on its own base model"
            )
    missing = [f"layers.{i}.pvm_block.{n}" for i in layers for n in expected if (i, n) not in found]
    if missing:
        raise PVMFormatError(f"'{path}': missing PVM tensors {missing[:4]}{' ...' if len(missing) > 4 else ''}")


def load_pvm(model: LoadedModel | nn.Module, path: str | Path, *, check_base: bool = True) -> PVMHandle:
    """Attach PVM from ``path`` (adapter dir or full reference checkpoint) and return the handle.

    The handle is also set as ``model.pvm`` for a LoadedModel. Tensors are cast to the model's
    dtype. ``check_base`` verifies that the adapter/checkpoint belongs to the loaded base.

    Raises:
        PVMFormatError: not a PVM path, a different base model, or tensor shapes that do not
            fit (the message names the tensor or model and the fix).
    """
    p = Path(path).expanduser()
    fmt = detect_format(p)
    if fmt == "adapter":
        config = _read_json_object(p / ADAPTER_CONFIG, "PVM adapter config")
        layers, d = _check_layer_fields(config, p / ADAPTER_CONFIG, "layers", "pvm_hidden_size")
        version = config.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise PVMFormatError(
                f"{p / ADAPTER_CONFIG}: 'version' must be an integer, not {json.dumps(version)[:40]}; {_FIX}"
            )
        if version > ADAPTER_VERSION:
            raise PVMFormatError(f"adapter '{p}' has version {config['version']}; upgrade pvm-bench to read it")
        if check_base:
            _check_adapter_base(config, model, p)
        tensors = _read_safetensors(p / ADAPTER_WEIGHTS)
        if not tensors:
            raise PVMFormatError(f"'{p / ADAPTER_WEIGHTS}' holds no tensors; {_FIX}")
        base_id, base_fp = config.get("base_model"), config.get("base_fingerprint")
    else:
        tc = _text_config_dict(_read_json_object(p / "config.json", "checkpoint config"))
        layers, d = _check_layer_fields(tc, p / "config.json", "pvm_layers", "pvm_hidden_size")
        if check_base:
            _check_full_base(p, model)
        tensors = read_checkpoint_tensors(p)
        base_id, base_fp = str(p), None
        if not tensors:
            raise PVMFormatError(f"checkpoint '{p}' declares pvm_layers {layers} but holds no '*.pvm_block.*' tensors")
    _check_finite(tensors, p)
    _validate_shapes(model, tensors, layers, d, p)  # layers: validated ints (_check_layer_fields)
    try:
        handle = attach_pvm(model, layers=layers, hidden_size=d,
                            intermediate_size=_intermediate_from(tensors))
    except PVMAttachError as exc:
        raise PVMFormatError(f"'{p}': {exc}") from None
    try:
        handle.load_state_dict(_canonical(tensors, handle), source=str(p))
    except PVMAttachError as exc:
        handle.remove()
        if hasattr(model, "pvm"):
            model.pvm = None  # type: ignore[union-attr]
        raise PVMFormatError(str(exc)) from None
    handle.base_model_id = base_id or handle.base_model_id
    handle.base_fingerprint = base_fp or handle.base_fingerprint
    return handle


def _save_processor(model: LoadedModel, out: Path) -> None:
    """Save the processor; without torchvision some components are None and the processor's
    own save fails, so fall back to the source dir's processor files plus each component."""
    import shutil

    processor = model.processor
    try:
        processor.save_pretrained(out)
        return
    except (AttributeError, TypeError, ValueError):
        pass
    source = Path(str(model.source)).expanduser()
    if source.is_dir():
        for f in source.iterdir():
            if f.is_file() and f.suffix in (".json", ".jinja", ".txt", ".model") and f.name not in (
                "config.json", "model.safetensors.index.json", "generation_config.json"
            ):
                shutil.copy2(f, out / f.name)
    for name in getattr(processor, "get_attributes", list)():
        component = getattr(processor, name, None)
        if component is not None and hasattr(component, "save_pretrained"):
            component.save_pretrained(out)


def export_reference(model: LoadedModel, out_dir: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write base + PVM as one reference-format checkpoint (config fields + weights) to ``out_dir``.

    The result loads with ``load_model(out_dir, pvm=out_dir)`` and with the reference code.
    """
    handle = _handle_of(model)
    out = _output_dir(out_dir)
    hf = model.hf_model
    tc = hf.config.get_text_config()
    for name, value in handle.config_fields().items():
        setattr(tc, name, value)
    original = next(hf.parameters()).dtype
    if dtype is not None and dtype != original:
        hf.to(dtype)
    try:
        hf.save_pretrained(out)
    finally:
        if dtype is not None and dtype != original:
            hf.to(original)
    if getattr(model, "processor", None) is not None:
        _save_processor(model, out)
    saved = read_checkpoint_tensors(out)
    if len(saved) != len(handle.state_dict()):
        raise PVMFormatError(f"export to '{out}' lost PVM tensors ({len(saved)} of {len(handle.state_dict())} saved)")
    return out


__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "PVMFormatError",
    "detect_format",
    "export_reference",
    "load_pvm",
    "read_checkpoint_tensors",
    "save_adapter",
]
