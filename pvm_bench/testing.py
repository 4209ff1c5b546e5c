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


def build_char_tokenizer(
    specials: tuple[str, ...],
    eos: str,
    pad: str,
    chat_template: str,
    *,
    bos: str | None = None,
    named_specials: dict[str, str] | None = None,
):
    """A character-level fast tokenizer with ``specials`` as whole tokens (ids 0..n-1).

    ``named_specials`` become tokenizer attributes the family's processor reads (e.g.
    ``{"boi_token": "<start_of_image>"}`` gives ``tok.boi_token`` and ``tok.boi_token_id``),
    as ``extra_special_tokens`` do in the real checkpoints' ``tokenizer_config.json``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    named = dict(named_specials or {})
    specials = tuple(dict.fromkeys((*specials, *named.values())))
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
        **({"bos_token": bos} if bos is not None else {}),
        additional_special_tokens=[s for s in specials if s not in (eos, pad, bos)],
        **({"extra_special_tokens": named} if named else {}),
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


def _qwen_family(size: dict[str, int], config_cls: str, patch: int, vision: dict, mrope_interleaved: bool):
    """The Qwen2/2.5/3-VL recipe: ChatML with vision markers, patch ``patch``, merge 2."""
    import transformers
    from transformers import Qwen2VLImageProcessorPil

    tok = build_char_tokenizer(
        QWEN_SPECIALS, "<|im_end|>", "<|endoftext|>",
        _CHATML.replace("IMAGE_MARKER", "<|vision_start|><|image_pad|><|vision_end|>"),
    )
    ids = tok.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(size["head_dim"])}
    if mrope_interleaved:
        rope["mrope_interleaved"] = True
    config = getattr(transformers, config_cls)(
        text_config=_text_config(size, len(tok), rope_parameters=rope),
        vision_config={"depth": 2, "num_heads": 2, "patch_size": patch, "spatial_merge_size": 2,
                       "temporal_patch_size": 2, **vision},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    side = 2 * patch  # one merged token is (2 * patch) px square; allow 1 to 16 of them
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch, merge_size=2, temporal_patch_size=2, min_pixels=side * side, max_pixels=(4 * side) ** 2
    )
    return config, tok, image_processor, {}


def _qwen3_vl(size: dict[str, int]):
    vision = {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": size["hidden"],
              "num_position_embeddings": 64, "deepstack_visual_indexes": [1]}
    return _qwen_family(size, "Qwen3VLConfig", 16, vision, mrope_interleaved=True)


def _qwen2_5_vl(size: dict[str, int]):
    vision = {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": size["hidden"],
              "window_size": 56, "fullatt_block_indexes": [1]}
    return _qwen_family(size, "Qwen2_5_VLConfig", 14, vision, mrope_interleaved=False)


def _qwen2_vl(size: dict[str, int]):
    vision = {"embed_dim": 32, "hidden_size": size["hidden"], "mlp_ratio": 2}
    return _qwen_family(size, "Qwen2VLConfig", 14, vision, mrope_interleaved=False)


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
    text = _text_config(
        size, len(tok), model_type="qwen2", rope_parameters={"rope_type": "default", "rope_theta": 10000.0}
    )
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


# Shared by the families below: a 2-layer ViT over 32 px images in 8 px patches (4x4 patches).
_TINY_VIT = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "image_size": 32, "patch_size": 8,
}
_DEFAULT_ROPE = {"rope_type": "default", "rope_theta": 10000.0}


# llava-hf/llava-1.5-*-hf: "USER: <image>\n<text> ASSISTANT:" (images first, then text).
_LLAVA15_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] != 'system' %}{{ m['role'].upper() + ': ' }}{% endif %}"
    "{% if m['content'] is string %}{{ m['content'] + ' ' }}{% else %}"
    "{% for c in m['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for c in m['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] + ' ' }}{% endfor %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _llava(size: dict[str, int]):
    from transformers import CLIPImageProcessorPil, LlavaConfig

    tok = build_char_tokenizer(
        ("<unk>", "<s>", "</s>", "<pad>", "<image>"), "</s>", "<pad>", _LLAVA15_TEMPLATE, bos="<s>"
    )
    text = _text_config(size, len(tok), model_type="llama", rope_parameters=dict(_DEFAULT_ROPE))
    config = LlavaConfig(
        text_config=text,
        vision_config={
            "model_type": "clip_vision_model", "projection_dim": 32, **_TINY_VIT,
        },
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=16, vision_feature_select_strategy="default", vision_feature_layer=-2,
        tie_word_embeddings=False,
    )
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return config, tok, image_processor, {
        "patch_size": 8, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1,
    }


# Idefics3 / SmolVLM: "User:<image>text<end_of_utterance>\nAssistant:"; the processor expands
# <image> into <fake_token_around_image><row_i_col_j><image>*n ... <global-img> blocks.
_IDEFICS_TEMPLATE = (
    "PREFIX{% for m in messages %}{{ m['role'] | capitalize }}"
    "{% if m['content'] is string %}{{ ': ' + m['content'] }}{% else %}"
    "{% if m['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% elif c['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|begin_of_text|>", "<end_of_utterance>", "<fake_token_around_image>",
    "<image>", "<global-img>", *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)


def _idefics_parts(size: dict[str, int], prefix: str, config_cls, processor_cls):
    tok = build_char_tokenizer(
        IDEFICS_SPECIALS, "<end_of_utterance>", "<|endoftext|>", _IDEFICS_TEMPLATE.replace("PREFIX", prefix)
    )
    text = _text_config(size, len(tok), model_type="llama", rope_parameters=dict(_DEFAULT_ROPE))
    # 32 px tiles of 8 px patches, pixel-shuffled by 2: 4 <image> tokens per tile.
    config = config_cls(
        text_config=text,
        vision_config=dict(_TINY_VIT),
        scale_factor=2, image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    image_processor = processor_cls(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    return config, tok, image_processor, {"image_seq_len": 4}


def _idefics3(size: dict[str, int]):
    from transformers import Idefics3Config, Idefics3ImageProcessorPil

    return _idefics_parts(size, "<|begin_of_text|>", Idefics3Config, Idefics3ImageProcessorPil)


def _smolvlm(size: dict[str, int]):
    from transformers import SmolVLMConfig, SmolVLMImageProcessorPil

    return _idefics_parts(size, "<|im_start|>", SmolVLMConfig, SmolVLMImageProcessorPil)


def _internvl(size: dict[str, int]):
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig

    named = {"start_image_token": "<img>", "end_image_token": "</img>",
             "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    # OpenGVLab/InternVL3-*-hf: ChatML with "<IMG_CONTEXT>\n" per image; the processor expands it
    # to <img><IMG_CONTEXT>*n</img>.
    tok = build_char_tokenizer(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), "<|im_end|>", "<|endoftext|>",
        _CHATML.replace("IMAGE_MARKER", "<IMG_CONTEXT>\n"), named_specials=named,
    )
    text = _text_config(size, len(tok), model_type="qwen2", rope_parameters=dict(_DEFAULT_ROPE))
    config = InternVLConfig(
        text_config=text,
        vision_config=dict(_TINY_VIT),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=4, downsample_ratio=0.5,
        vision_feature_layer=-1, tie_word_embeddings=False,
    )
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": 32, "width": 32}, crop_to_patches=True, min_patches=1, max_patches=4
    )
    return config, tok, image_processor, {"image_seq_length": 4}


# google/gemma-3-*-it: <start_of_turn>user ... <end_of_turn>, "model" for the assistant; each image is
# <start_of_image>, which the processor expands to \n\n<start_of_image><image_soft_token>*n<end_of_image>\n\n.
_GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] | trim }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}{{ '<start_of_image>' }}"
    "{% else %}{{ c['text'] | trim }}{% endif %}{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _gemma3(size: dict[str, int]):
    from transformers import Gemma3Config, Gemma3ImageProcessorPil

    named = {
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
    }
    tok = build_char_tokenizer(
        ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"), "<end_of_turn>", "<pad>",
        _GEMMA3_TEMPLATE, bos="<bos>", named_specials=named,
    )
    ids = tok.convert_tokens_to_ids
    text = _text_config(
        size, len(tok),
        query_pre_attn_scalar=size["head_dim"],
        # Small window and one sliding + one full layer (the 5:1 pattern of the real models,
        # shortened) so that the sliding-window mask is exercised by short prompts.
        sliding_window=8,
        layer_types=[
            "full_attention" if (i + 1) % 6 == 0 or i == size["layers"] - 1 else "sliding_attention"
            for i in range(size["layers"])
        ],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
        },
    )
    config = Gemma3Config(
        text_config=text,
        vision_config={
            "model_type": "siglip_vision_model", "vision_use_head": False, **_TINY_VIT,
        },
        mm_tokens_per_image=4,  # 4x4 patches average-pooled to 2x2
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"), tie_word_embeddings=False,
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    return config, tok, image_processor, {"image_seq_length": 4}


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
        TinyRecipe("qwen2_vl", _qwen2_vl),
        TinyRecipe("llava", _llava),
        TinyRecipe("idefics3", _idefics3),
        TinyRecipe("smolvlm", _smolvlm),
        TinyRecipe("internvl", _internvl),
        TinyRecipe("gemma3", _gemma3),
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
