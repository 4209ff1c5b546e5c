"""Tiny models of every family (built once per session) and small request batches for replay tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pvm_bench.models.generation import Request
from pvm_bench.testing import TINY_RECIPES

FAMILIES = sorted(TINY_RECIPES)


@pytest.fixture(scope="session")
def replay_tiny_dirs(tiny_model) -> dict[str, Path]:
    """family -> a tiny random model (peaky init so the masses are not uniform; the probe tests' models)."""
    return {fam: tiny_model(fam, seed=1, init_std=0.2, name=fam) for fam in FAMILIES}


def request(text: str, sizes: list[tuple[int, int, tuple[int, int, int]]]) -> Request:
    images = [Image.new("RGB", (w, h), c) for w, h, c in sizes]
    parts = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
    return Request(messages=[{"role": "user", "content": parts}], images=images)


def single() -> list[Request]:
    return [request("What colour is the square?", [(64, 48, (200, 30, 30))])]


def padded() -> list[Request]:
    """Left padding (different prompt lengths), different image sizes, a two-image row."""
    return [
        request("Colour?", [(32, 32, (10, 200, 10))]),
        request("Describe the picture in detail, please.", [(96, 64, (10, 10, 200))]),
        request("Compare both images.", [(48, 48, (200, 200, 10)), (64, 32, (90, 0, 90))]),
    ]


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
