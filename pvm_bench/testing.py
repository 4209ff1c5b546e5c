"""Tiny random VLMs of every supported family, built offline and deterministically.

``build_tiny_model(family, out_dir)`` writes an ordinary model directory (config, safetensors
weights, tokenizer, image processor, chat template) that :func:`pvm_bench.load_model` and
transformers' ``from_pretrained`` read like any hub checkpoint. The tokenizer is character
level and built with the ``tokenizers`` library, so nothing is downloaded. Random models emit
image placeholder ids; :func:`pvm_bench.models.loading.LoadedModel.suppress_token_ids` lists
the ids to pass as ``suppress_tokens``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
LLAVA_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")

# ChatML with the family's image marker. Content may be a string or a list of
# {"type": "image"} / {"type": "text", "text": ...} parts, as in transformers' templates.
_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}IMAGE_MARKER"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SIZES: dict[str, dict[str, int]] = {
    # ~0.2M parameters: unit tests.
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16, "inter": 128},
    # ~1.5M: the model organism's scale.
    "small": {"hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "head_dim": 32, "inter": 384},
    # ~80M: benchmarks, where per-token overheads become realistic ratios.
    "bench": {"hidden": 768, "layers": 10, "heads": 12, "kv_heads": 4, "head_dim": 64, "inter": 3072},
}


def build_char_tokenizer(specials: tuple[str, ...], eos: str, pad: str, chat_template: str):
    """A character-level fast tokenizer with ``specials`` as whole tokens (ids 0..n-1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in string.printable:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[s for s in specials if s not in (eos, pad)],
    )
    tok.chat_template = chat_template
    return tok


def _text_config(size: dict[str, int], vocab_size: int, **extra) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": size["hidden"],
        "intermediate_size": size["inter"],
        "num_hidden_layers": size["layers"],
        "num_attention_heads": size["heads"],
        "num_key_value_heads": size["kv_heads"],
        "head_dim": size["head_dim"],
        "max_position_embeddings": 16384,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": None,
        **extra,
    }


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen3_vl(size: dict[str, int]):
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig

    tok = build_char_tokenizer(
        QWEN_SPECIALS, "<|im_end|>", "<|endoftext|>",
        _CHATML.replace("IMAGE_MARKER", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    ids = tok.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config=_text_config(
            size, len(tok),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "mrope_section": _mrope_section(size["head_dim"]), "mrope_interleaved": True},
        ),
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "out_hidden_size": size["hidden"], "patch_size": 16, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "num_position_embeddings": 64, "deepstack_visual_indexes": [1],
        },
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=128 * 128
    )
    return config, tok, image_processor, {}


def _qwen2_5_vl(size: dict[str, int]):
    from transformers import Qwen2_5_VLConfig, Qwen2VLImageProcessorPil

    tok = build_char_tokenizer(
        QWEN_SPECIALS, "<|im_end|>", "<|endoftext|>",
        _CHATML.replace("IMAGE_MARKER", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    ids = tok.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=_text_config(
            size, len(tok),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                             "mrope_section": _mrope_section(size["head_dim"])},
        ),
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
            "out_hidden_size": size["hidden"], "patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "window_size": 56, "fullatt_block_indexes": [1],
        },
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=28 * 28, max_pixels=112 * 112
    )
    return config, tok, image_processor, {}


def _llava_onevision(size: dict[str, int]):
    from transformers import LlavaOnevisionConfig
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tok = build_char_tokenizer(
        LLAVA_SPECIALS, "<|im_end|>", "<|endoftext|>", _CHATML.replace("IMAGE_MARKER", "<image>\n")
    )
    ids = tok.convert_tokens_to_ids
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    text = _text_config(size, len(tok), model_type="qwen2", rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    config = LlavaOnevisionConfig(
        text_config=text,
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
        },
        image_token_index=ids("<image>"), video_token_index=ids("<video>"),
        image_grid_pinpoints=pinpoints, vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=False,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints, crop_size={"height": 32, "width": 32}
    )
    return config, tok, image_processor, {"num_image_tokens": 16, "vision_feature_select_strategy": "full"}


@dataclass(frozen=True)
class TinyRecipe:
    """How to build a tiny member of one family: config, tokenizer and image processor."""

    model_type: str
    build: Callable


TINY_RECIPES: dict[str, TinyRecipe] = {
    r.model_type: r
    for r in (
        TinyRecipe("qwen3_vl", _qwen3_vl),
        TinyRecipe("qwen2_5_vl", _qwen2_5_vl),
        TinyRecipe("llava_onevision", _llava_onevision),
    )
}


def build_tiny_model(
    family: str = "qwen3_vl",
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    size: str = "tiny",
    init_std: float | None = None,
) -> Path:
    """Build a random ``family`` model of ``size`` and save it as a model directory.

    The same ``(family, size, seed)`` always produces byte-identical weights. Returns the
    directory. ``init_std`` overrides the config's ``initializer_range`` (larger values give
    random models with peakier attention).
    """
    from transformers import AutoModelForImageTextToText

    if family not in TINY_RECIPES:
        raise ValueError(f"no tiny recipe for family '{family}'; available: {', '.join(TINY_RECIPES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}'; available: {', '.join(SIZES)}")
    out = Path(out_dir) if out_dir is not None else Path.cwd() / f"tiny-{family}-{size}-s{seed}"
    config, tokenizer, image_processor, processor_kwargs = TINY_RECIPES[family].build(SIZES[size])
    if init_std is not None:
        config.initializer_range = init_std
        config.get_text_config().initializer_range = init_std
    config.pad_token_id = tokenizer.pad_token_id
    config.get_text_config().pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.get_text_config().eos_token_id = tokenizer.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    if processor_kwargs:
        (out / "processor_config.json").write_text(
            json.dumps({"processor_class": config_processor_class(family), **processor_kwargs}, indent=2) + "\n"
        )
    return out


def config_processor_class(family: str) -> str:
    """The processor class name recorded for ``family`` in the model table."""
    from pvm_bench.models.families import family_for

    return family_for(family).processor_class
