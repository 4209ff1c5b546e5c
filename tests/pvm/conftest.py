"""Fixtures for the PVM tests: tiny models (built once) and a left-padded batch of mixed image sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _pvm_one_thread():
    """One torch thread: on a busy 2-core CI box two OpenMP threads make these tiny-model ops
    ~30x slower (spin-waiting), and the models are too small to gain from threads."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def pvm_tiny_dirs(tiny_model) -> dict[str, Path]:
    """Tiny random models of every family (seed 0), plus a second Qwen3-VL (seed 1)."""
    dirs = {fam: tiny_model(fam, seed=0, name=fam) for fam in ("qwen3_vl", "qwen2_5_vl", "llava_onevision")}
    dirs["qwen3_vl_seed1"] = tiny_model("qwen3_vl", seed=1, name="qwen3_vl_seed1")
    return dirs


def mixed_requests():
    """Three prompts of different lengths (left padding) with images of different token counts."""
    from pvm_bench.models.generation import Request

    def req(text: str, size: tuple[int, int], colour: tuple[int, int, int]) -> Request:
        img = Image.new("RGB", size, colour)
        for x in range(0, size[0], 7):  # some texture so image tokens differ within an image
            img.putpixel((x, x % size[1]), (x * 3 % 256, 40, 200))
        return Request(messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
                       images=[img])

    return [
        req("hi", (64, 64), (255, 0, 0)),
        req("what colour is the thing here?", (32, 96), (0, 0, 255)),
        req("and this?", (96, 128), (0, 200, 0)),
    ]
