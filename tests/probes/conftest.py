"""Shared fixtures for the probe tests: tiny models of every family, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pvm_bench.models.generation import Request
from pvm_bench.testing import TINY_RECIPES

FAMILIES = sorted(TINY_RECIPES)


@pytest.fixture(scope="session")
def tiny_dirs(tiny_model) -> dict[str, Path]:
    """family -> directory of a tiny random model (peakier init so masses are not all uniform)."""
    return {fam: tiny_model(fam, seed=1, init_std=0.2, name=fam) for fam in FAMILIES}


def image(w: int, h: int, colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (w, h), colour)


def request(text: str, images: list[Image.Image], seed: int = 0) -> Request:
    """A user turn with ``len(images)`` image parts followed by ``text``."""
    parts = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
    return Request(messages=[{"role": "user", "content": parts}], images=images, seed=seed)


def batch1() -> list[Request]:
    return [request("What colour is the square?", [image(64, 48, (200, 30, 30))])]


def batch3() -> list[Request]:
    """Different prompt lengths (left padding), image sizes and image counts (one multi-image row)."""
    return [
        request("Colour?", [image(32, 32, (10, 200, 10))]),
        request("Describe the picture in detail, please.", [image(96, 64, (10, 10, 200))]),
        request("Compare both images.", [image(48, 48, (200, 200, 10)), image(64, 32, (90, 0, 90))]),
    ]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run probe tests single-threaded: tiny models gain nothing from threads, and on a shared
    small CPU multi-threaded ops stall behind other processes (seconds per test). Restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
