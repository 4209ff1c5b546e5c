"""PVM size from a config alone: parameters and share of the base, computed on the meta device.

Nothing is allocated, so Qwen3-VL-8B shapes work without weights. ``--model`` accepts a
hub id or model directory (only its config is read) or a builtin shape name
(:data:`BUILTIN_SHAPES`) so the numbers are reproducible offline.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pvm_bench.pvm.attach import DEFAULT_PVM_HIDDEN_SIZE, resolve_layers
from pvm_bench.pvm.block import PVMBlock, PVMShape


def _qwen3_vl_config(hidden: int, inter: int, out_vision: int, deepstack: list[int], tie: bool) -> Any:
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config={
            "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": 36,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
            "tie_word_embeddings": tie, "rms_norm_eps": 1e-6,
        },
        vision_config={
            "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16,
            "out_hidden_size": out_vision, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "num_position_embeddings": 2304, "deepstack_visual_indexes": deepstack,
        },
        tie_word_embeddings=tie,
    )


# Published Qwen3-VL shapes (config.json of the hub checkpoints), buildable offline.
BUILTIN_SHAPES: dict[str, Any] = {
    "qwen3-vl-8b": lambda: _qwen3_vl_config(4096, 12288, 4096, [8, 16, 24], tie=False),
    "qwen3-vl-4b": lambda: _qwen3_vl_config(2560, 9728, 2560, [5, 11, 17], tie=True),
}
BUILTIN_ALIASES = {
    "qwen/qwen3-vl-8b-instruct": "qwen3-vl-8b",
    "qwen/qwen3-vl-8b-thinking": "qwen3-vl-8b",
    "qwen/qwen3-vl-4b-instruct": "qwen3-vl-4b",
    "qwen/qwen3-vl-4b-thinking": "qwen3-vl-4b",
}


@dataclass(frozen=True)
class PVMInfo:
    """Size of a PVM configuration on a base model."""

    model: str
    model_type: str
    layers: list[int]
    shape: PVMShape
    pvm_params: int
    base_params: int

    @property
    def share(self) -> float:
        """PVM parameters as a fraction of the base model's."""
        return self.pvm_params / self.base_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_type": self.model_type,
            "layers": self.layers,
            **self.shape.to_dict(),
            "pvm_params": self.pvm_params,
            "base_params": self.base_params,
            "share": self.share,
        }

    def summary(self) -> str:
        """``PVM 27.92M parameters (0.32% of 8.77B)`` and the block shape."""
        s = self.shape
        return (
            f"{self.model} ({self.model_type}): PVM at layers {self.layers}, d={s.pvm_hidden_size}, "
            f"heads {s.num_heads}/{s.num_kv_heads} x {s.head_dim}, SwiGLU {s.intermediate_size}\n"
            f"PVM {format_count(self.pvm_params)} parameters ({format_share(self.share)} of "
            f"{format_count(self.base_params)})"
        )


def format_count(n: int | float) -> str:
    """A parameter count in the largest unit it reaches: ``812``, ``206.3K``, ``27.92M``, ``8.77B``."""
    for scale, unit, digits in ((1e9, "B", 2), (1e6, "M", 2), (1e3, "K", 1)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{unit}"
    return f"{n:.0f}"


def format_share(share: float) -> str:
    """A fraction as a percentage with two decimals under 10%, a multiple when it exceeds 100%."""
    if share >= 1:
        return f"{share:.3g}x the size"
    if share >= 0.1:
        return f"{100 * share:.1f}%"
    return f"{100 * share:.2f}%"


def load_config(model: str, *, trust_remote_code: bool = False) -> Any:
    """A builtin shape name, hub id or local directory -> transformers config (config only)."""
    key = BUILTIN_ALIASES.get(model.lower(), model.lower())
    if key in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[key]()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ValueError(
            f"cannot read the config of '{model}' ({str(exc).splitlines()[0] if str(exc) else exc}); "
            f"pass a local model dir, a cached hub id, or a builtin shape: {', '.join(BUILTIN_SHAPES)}"
        ) from None


def count_meta_params(module_factory: Any) -> int:
    """Parameter count of the module built by ``module_factory()`` on the meta device."""
    with torch.device("meta"):
        module = module_factory()
    return sum(p.numel() for p in module.parameters())


@functools.cache
def _builtin_base_params(key: str) -> int:
    from transformers import AutoModelForImageTextToText

    return count_meta_params(lambda: AutoModelForImageTextToText.from_config(BUILTIN_SHAPES[key]()))


def pvm_info(
    model: str | Any,
    layers: Sequence[int | float | str] | str | None = None,
    hidden_size: int = DEFAULT_PVM_HIDDEN_SIZE,
) -> PVMInfo:
    """Parameter count of PVM on ``model`` (name/dir/builtin shape or a config object)."""
    from transformers import AutoModelForImageTextToText

    from pvm_bench.models.families import FAMILIES

    config = load_config(model) if isinstance(model, str) else model
    name = model if isinstance(model, str) else getattr(config, "_name_or_path", "") or config.model_type
    tc = config.get_text_config()
    shape = PVMShape.from_text_config(tc, hidden_size)
    family = FAMILIES.get(config.model_type)
    chosen = resolve_layers(layers, int(tc.num_hidden_layers), int(tc.hidden_size), family)
    per_block = count_meta_params(lambda: PVMBlock(shape))
    key = BUILTIN_ALIASES.get(model.lower(), model.lower()) if isinstance(model, str) else None
    if key in BUILTIN_SHAPES:
        base = _builtin_base_params(key)
    else:
        base = count_meta_params(lambda: AutoModelForImageTextToText.from_config(config))
    return PVMInfo(
        model=str(name), model_type=config.model_type, layers=chosen, shape=shape,
        pvm_params=per_block * len(chosen), base_params=base,
    )
