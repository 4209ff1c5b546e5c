"""A reasoning block the prompt opened: the completion starts inside it without an opening tag.

Thinking checkpoints' chat templates end the generation prompt with the opening tag (Qwen3-VL
Thinking: ``<|im_start|>assistant\\n<think>\\n``), so the model's output holds only ``</think>`` when
it finishes reasoning, and no tag at all when it is cut while still reasoning. lmms-eval 0.7.3
handles the first case (``api/reasoning.py`` lines 29-34: keep the text after the last closing
tag); pvm-bench's unfinished-reasoning policy and share need the second, which the output alone
cannot show. :func:`opened_reasoning` reads it from the rendered prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def opened_reasoning(prompt: Any, tag_pairs: Sequence[Sequence[str]]) -> str:
    """The opening tag of ``tag_pairs`` that ``prompt`` ends with (trailing whitespace ignored), else ``""``."""
    tail = prompt.rstrip() if isinstance(prompt, str) else ""
    return next((start for start, _ in tag_pairs if tail.endswith(start)), "")
