"""Input protocols as data: lmms-eval's per-family presets, explicit values win, pixel limits
bound the image tokens, and the default changes nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from pvm_bench.errors import UserError
from pvm_bench.models.families import FAMILIES
from pvm_bench.models.generation import Request, encode
from pvm_bench.models.loading import load_model
from pvm_bench.models.processor import apply_pixel_limits, pixel_limits
from pvm_bench.models.protocol import ProtocolError, apply_protocol, resolve_protocol
from pvm_bench.runner.guard import resume_changes


def test_lmms_eval_preset_for_qwen3_vl_is_the_wrappers_defaults():
    protocol, limits = resolve_protocol(FAMILIES["qwen3_vl"], "lmms-eval")
    # lmms-eval 0.7.3 models/simple/qwen3_vl.py lines 86-87, 91.
    assert protocol.system_prompt == "You are a helpful assistant."
    assert limits == (200704, 1605632)
    assert protocol.sources == {"system_prompt": "lmms-eval", "min_pixels": "lmms-eval", "max_pixels": "lmms-eval"}
    assert "qwen3_vl.py" in FAMILIES["qwen3_vl"].protocols["lmms-eval"].source
    assert FAMILIES["qwen2_vl"].protocols["lmms-eval"].max_pixels == 602112


def test_explicit_values_win_and_empty_system_prompt_means_none():
    protocol, limits = resolve_protocol(
        FAMILIES["qwen3_vl"], "lmms-eval", system_prompt="", max_pixels=4096, min_pixels=1024
    )
    assert protocol.system_prompt is None and limits == (1024, 4096)
    assert protocol.sources == {"system_prompt": "user", "min_pixels": "user", "max_pixels": "user"}
    protocol, limits = resolve_protocol(FAMILIES["qwen3_vl"], "default", system_prompt="Be brief.")
    assert protocol.system_prompt == "Be brief." and limits == (None, None)
    assert protocol.sources["min_pixels"] == "processor"


def test_default_protocol_sets_nothing():
    protocol, limits = resolve_protocol(FAMILIES["gemma3"])
    assert protocol.name == "default" and protocol.system_prompt is None and limits == (None, None)


def test_family_without_a_preset_and_fixed_size_family_are_one_clear_error():
    with pytest.raises(ProtocolError, match="no lmms-eval settings are known for SmolVLM"):
        resolve_protocol(FAMILIES["smolvlm"], "lmms-eval")
    with pytest.raises(ProtocolError, match="unknown --protocol 'vlmeval'"):
        resolve_protocol(FAMILIES["qwen3_vl"], "vlmeval")
    with pytest.raises(UserError, match="LLaVA-1.5 resizes images to a fixed size"):
        apply_pixel_limits(object(), FAMILIES["llava"], None, 4096)
    # Gemma3's preset is the system turn only (its processor has a fixed size).
    protocol, limits = resolve_protocol(FAMILIES["gemma3"], "lmms-eval")
    assert protocol.system_prompt == "You are a helpful assistant." and limits == (None, None)


def _image_tokens(lm, image: Image.Image) -> int:
    request = Request([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}], [image])
    enc, _ = encode(lm, [request])
    return int((enc["input_ids"] == lm.image_token_id).sum())


def test_max_pixels_bounds_the_image_tokens_of_a_large_image(tiny_qwen3_vl):
    lm = load_model(str(tiny_qwen3_vl), device="cpu")
    image = Image.new("RGB", (512, 384), (200, 30, 30))
    before = pixel_limits(lm.processor, lm.spec)
    assert before == (1024, 16384)  # the tiny checkpoint's preprocessor_config.json
    default_tokens = _image_tokens(lm, image)
    # smart_resize(384, 512, factor 32, max 16384) -> 96 x 128 px -> 3 x 4 merged tokens.
    assert default_tokens == 12
    assert apply_protocol(lm).min_pixels == 1024 and _image_tokens(lm, image) == default_tokens  # default: unchanged

    protocol = apply_protocol(lm, max_pixels=4096)
    assert (protocol.min_pixels, protocol.max_pixels) == (1024, 4096)
    tokens = _image_tokens(lm, image)
    # Qwen3-VL: one token per 32 x 32 px (patch 16, merge 2): at most 4096 / 1024 = 4 tokens.
    assert tokens == 2 and tokens <= 4096 // (32 * 32)

    # lmms-eval's bounds: at least 200704 px (196 tokens), at most 1605632 px (1568 tokens).
    protocol = apply_protocol(lm, "lmms-eval")
    assert (protocol.min_pixels, protocol.max_pixels) == (200704, 1605632)
    assert _image_tokens(lm, image) == 13 * 17  # 384 x 512 scaled up to 416 x 544 px
    assert 196 <= _image_tokens(lm, Image.new("RGB", (2000, 2000))) == 39 * 39 <= 1568

    with pytest.raises(UserError, match="--min-pixels 200704 is above --max-pixels 4096"):
        apply_pixel_limits(lm.processor, lm.spec, None, 4096)


def test_resume_compares_protocol_settings_but_not_settings_an_old_run_lacks():
    old = SimpleNamespace(model={}, adapter=None, datasets={}, generation={"t": {"max_new_tokens": 8}})
    new = SimpleNamespace(model={}, adapter=None, datasets={}, generation={"t": {
        "max_new_tokens": 8, "protocol": "default", "system_prompt": None, "min_pixels": 1024, "max_pixels": 16384}})
    assert resume_changes(old, new) == []  # a run recorded before protocols existed still resumes
    old.generation = {
        "t": {**new.generation["t"], "system_prompt": "You are a helpful assistant.", "protocol": "lmms-eval"}
    }
    changes = resume_changes(old, new)
    assert len(changes) == 1 and "protocol lmms-eval -> default" in changes[0] and "system_prompt" in changes[0]
