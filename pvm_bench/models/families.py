"""The model family table: everything pvm-bench needs to know about a VLM family, as data.

Each entry describes how to reach the decoder layers, which config fields hold the image
placeholder ids, and how the processor is built. Code elsewhere looks families up by the
``model_type`` of the loaded config; it never branches on family names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from pvm_bench.errors import UserError

#: lmms-eval 0.7.3's Qwen-VL wrappers' defaults (``models/simple/qwen3_vl.py`` lines 86-87, 91;
#: ``models/simple/qwen2_5_vl.py`` lines 44-45, 48).
LMMS_SYSTEM_PROMPT = "You are a helpful assistant."
LMMS_QWEN_MIN_PIXELS = 256 * 28 * 28
LMMS_QWEN_MAX_PIXELS = 1605632


@dataclass(frozen=True)
class HarnessSettings:
    """What a reference harness's model wrapper sends for one family (a ``--protocol`` preset).

    Attributes:
        system_prompt: the system turn it adds to every request (None: none).
        min_pixels / max_pixels: the image pixel-count bounds it resizes to (None: the
            processor's own); only meaningful for families with :attr:`FamilySpec.pixel_limit_keys`.
        source: where the values come from (file and lines), shown in run.json and the docs.
    """

    system_prompt: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    source: str = ""


@dataclass(frozen=True)
class FamilySpec:
    """How one VLM family is wired inside transformers.

    Attributes:
        model_type: ``config.model_type`` of the top-level config.
        name: human-readable family name.
        processor_class: transformers processor class name (used when AutoProcessor cannot
            build it, e.g. without torchvision).
        language_model_path: dotted path from the ``*ForConditionalGeneration`` model to the
            text decoder (the module that receives ``inputs_embeds``).
        layers_path: dotted path to the ``nn.ModuleList`` of decoder layers.
        image_token_fields: config fields holding the image placeholder id, first found wins.
        placeholder_token_fields: config fields of ids a random model must never emit.
        paper_pvm_layers: default PVM layers keyed by text hidden size (the paper's settings).
        example_ids: hub ids known to belong to the family (for ``pvm-bench models``).
        video_processor_defaults: attributes the processor reads from its video processor even
            for image-only input (SmolVLM's ``apply_chat_template`` reads ``num_frames``/``fps``).
            When the video processor cannot be built (no torchvision), a stand-in carrying these
            values is passed instead of ``None``; empty means ``None`` is fine.
        requires: importable modules the family's transformers processor needs beyond
            pvm-bench's own dependencies (SmolVLM's processor refuses to build without num2words).
        attention_module: name of a decoder layer's softmax self-attention submodule.
        ffn_input_modules: candidates (first present wins) for the module whose INPUT is the
            residual stream after self-attention, before the FFN (the FFN's pre-norm).
        ffn_output_modules: candidates for the module whose OUTPUT is what the layer adds to that
            residual (the FFN, or its post-norm in sandwich-norm families such as Gemma3).
        mlp_module: name of the FFN (gated MLP with ``up_proj``/``down_proj``) submodule.
        final_norm: name of the final norm under the language model (the logit lens applies it
            and then the output embeddings).
        Hook sites (:mod:`pvm_bench.instrument.sites`) are resolved from these names only.
        pixel_limit_keys: the image processor's ``size`` keys holding the (min, max) number of
            pixels an image is resized into (dynamic-resolution families); None for families
            that resize to a fixed size, where ``--min-pixels``/``--max-pixels`` do not apply.
        protocols: reference-harness presets by ``--protocol`` name (``lmms-eval``: what
            lmms-eval 0.7.3's wrapper for the family sends); see :mod:`pvm_bench.models.protocol`.
        image_grid: how an image's placeholder tokens lie on its patch grid: a rule name of
            :data:`pvm_bench.models.grids.GRID_RULES` (``--maps``); None: tokens in one row.
    """

    model_type: str
    name: str
    processor_class: str
    language_model_path: str = "model.language_model"
    layers_path: str = "model.language_model.layers"
    image_token_fields: tuple[str, ...] = ("image_token_id", "image_token_index")
    placeholder_token_fields: tuple[str, ...] = (
        "image_token_id",
        "image_token_index",
        "video_token_id",
        "video_token_index",
        "vision_start_token_id",
        "vision_end_token_id",
    )
    paper_pvm_layers: dict[int, tuple[int, ...]] = field(default_factory=dict)
    example_ids: tuple[str, ...] = ()
    video_processor_defaults: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    attention_module: str = "self_attn"
    ffn_input_modules: tuple[str, ...] = ("pre_feedforward_layernorm", "post_attention_layernorm")
    ffn_output_modules: tuple[str, ...] = ("post_feedforward_layernorm", "mlp")
    mlp_module: str = "mlp"
    final_norm: str = "norm"
    pixel_limit_keys: tuple[str, str] | None = None
    protocols: dict[str, HarnessSettings] = field(default_factory=dict)
    image_grid: str | None = "square"


#: (min, max) pixel keys of transformers' Qwen2VLImageProcessor ``size`` (Qwen2/2.5/3-VL).
QWEN_PIXEL_KEYS = ("shortest_edge", "longest_edge")


FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in (
        FamilySpec(
            model_type="qwen3_vl",
            image_grid="qwen_merged",
            name="Qwen3-VL",
            processor_class="Qwen3VLProcessor",
            paper_pvm_layers={4096: (8, 16, 24), 2560: (5, 11, 17)},
            example_ids=("Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
            pixel_limit_keys=QWEN_PIXEL_KEYS,
            protocols={"lmms-eval": HarnessSettings(
                LMMS_SYSTEM_PROMPT, LMMS_QWEN_MIN_PIXELS, LMMS_QWEN_MAX_PIXELS,
                source="lmms-eval 0.7.3 lmms_eval/models/simple/qwen3_vl.py: defaults lines 86-87, 91; "
                       "processor line 137; system turn line 305; per-image limits lines 333-334 "
                       "(qwen_vl_utils smart_resize, image_patch_size=16)",
            )},
        ),
        FamilySpec(
            model_type="qwen2_5_vl",
            image_grid="qwen_merged",
            name="Qwen2.5-VL",
            processor_class="Qwen2_5_VLProcessor",
            example_ids=("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
            pixel_limit_keys=QWEN_PIXEL_KEYS,
            protocols={"lmms-eval": HarnessSettings(
                LMMS_SYSTEM_PROMPT, LMMS_QWEN_MIN_PIXELS, LMMS_QWEN_MAX_PIXELS,
                source="lmms-eval 0.7.3 lmms_eval/models/simple/qwen2_5_vl.py: defaults lines 44-45, 48; "
                       "processor line 91; system turn line 228; per-image limits lines 254-255",
            )},
        ),
        FamilySpec(
            model_type="llava_onevision",
            image_grid="base_then_anyres",
            name="LLaVA-OneVision",
            processor_class="LlavaOnevisionProcessor",
            example_ids=("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
            # The -hf checkpoints run under lmms-eval's llava_hf wrapper (its model_map, line 41):
            # one user turn, the processor's own image size.
            protocols={"lmms-eval": HarnessSettings(
                source="lmms-eval 0.7.3 lmms_eval/models/simple/llava_hf.py lines 41 (onevision), 326 (user turn only)",
            )},
        ),
        FamilySpec(
            model_type="qwen2_vl",
            image_grid="qwen_merged",
            name="Qwen2-VL",
            processor_class="Qwen2VLProcessor",
            example_ids=("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"),
            pixel_limit_keys=QWEN_PIXEL_KEYS,
            protocols={"lmms-eval": HarnessSettings(
                LMMS_SYSTEM_PROMPT, 3136, 602112,
                source="lmms-eval 0.7.3 lmms_eval/models/simple/qwen2_vl.py: defaults lines 42-43, 45; "
                       "processor line 73; system turn line 252; per-image limits lines 294-295",
            )},
        ),
        FamilySpec(
            model_type="llava",
            name="LLaVA-1.5",
            processor_class="LlavaProcessor",
            example_ids=("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf"),
            # llava_hf sends one user turn and the processor's own image size.
            protocols={"lmms-eval": HarnessSettings(
                source="lmms-eval 0.7.3 lmms_eval/models/simple/llava_hf.py lines 34, 326 (user turn only)",
            )},
        ),
        FamilySpec(
            model_type="idefics3",
            image_grid="tiles_then_global",
            name="Idefics3",
            processor_class="Idefics3Processor",
            language_model_path="model.text_model",
            layers_path="model.text_model.layers",
            example_ids=("HuggingFaceM4/Idefics3-8B-Llama3",),
        ),
        FamilySpec(
            model_type="smolvlm",
            image_grid="tiles_then_global",
            name="SmolVLM",
            processor_class="SmolVLMProcessor",
            language_model_path="model.text_model",
            layers_path="model.text_model.layers",
            example_ids=(
                "HuggingFaceTB/SmolVLM-256M-Instruct",
                "HuggingFaceTB/SmolVLM-Instruct",
                "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
            ),
            # SmolVLMVideoProcessor defaults (SmolVLM2 checkpoints ship the same values).
            video_processor_defaults={"num_frames": 64, "fps": 1},
            requires=("num2words",),
        ),
        FamilySpec(
            model_type="internvl",
            image_grid="tiles_then_global",
            name="InternVL",
            processor_class="InternVLProcessor",
            example_ids=("OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3-8B-hf"),
        ),
        FamilySpec(
            model_type="gemma3",
            name="Gemma3",
            processor_class="Gemma3Processor",
            placeholder_token_fields=("image_token_index", "boi_token_index", "eoi_token_index"),
            example_ids=("google/gemma-3-4b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it"),
            # The wrapper also passes min/max_pixels (lines 46-47, 79, 261), but Gemma3's processor
            # resizes to its fixed size, so only the system turn changes what the model sees.
            protocols={"lmms-eval": HarnessSettings(
                LMMS_SYSTEM_PROMPT,
                source="lmms-eval 0.7.3 lmms_eval/models/simple/gemma3.py: default line 50; system turn line 243",
            )},
        ),
    )
}


class UnsupportedFamilyError(UserError, ValueError):
    """The model's ``model_type`` has no entry in :data:`FAMILIES`."""


def family_for(model_type: str) -> FamilySpec:
    """Return the family spec for ``model_type`` or raise :class:`UnsupportedFamilyError`."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise UnsupportedFamilyError(
            f"model_type '{model_type}' is not supported; supported families: "
            f"{', '.join(sorted(FAMILIES))} (see `pvm-bench models`)"
        ) from None


def resolve_path(root: nn.Module, dotted: str) -> nn.Module:
    """Follow a dotted attribute path from ``root`` (e.g. ``model.language_model.layers``)."""
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def first_config_value(config: object, fields: tuple[str, ...]) -> int | None:
    """The first of ``fields`` that ``config`` defines with a non-None value."""
    for name in fields:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None
