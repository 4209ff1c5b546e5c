"""The lmms-eval bridge reads a task's generation_kwargs as lmms-eval 0.7.3's qwen3_vl model does.

Needs lmms-eval importable (skipped without it, like test_lmms_bridge.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (optional extra: pvm-bench[lmms] + lmms-eval)")

from pvm_bench.bridge.lmms import PvmBenchLMM  # noqa: E402


class _Bridge:
    max_new_tokens = None
    _settings = PvmBenchLMM._settings


@pytest.mark.parametrize(
    ("gen_kwargs", "expected"),
    [
        # MMBench-EN YAML as is: greedy; top_p dropped (only repetition_penalty could apply).
        (
            {"max_new_tokens": 1024, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False},
            (1024, 0.0, None, None, None),
        ),
        # ... with --gen_kwargs temperature=0.7 (the PVM paper): samples although the YAML says do_sample: false.
        ({"max_new_tokens": 1024, "temperature": 0.7, "top_p": 1.0, "do_sample": False}, (1024, 0.7, 1.0, None, None)),
        # MMStar (no YAML generation_kwargs): everything but the temperature from the checkpoint.
        ({"until": ["\n\n"], "do_sample": False, "temperature": "0.7"}, (256, 0.7, None, None, None)),
        (
            {"temperature": 0.7, "top_k": "20", "repetition_penalty": "1.05", "top_p": "None"},
            (256, 0.7, None, 20, 1.05),
        ),
        ({"temperature": 0, "top_k": 20, "repetition_penalty": 1.05}, (256, 0.0, None, None, 1.05)),
    ],
)
def test_generation_kwargs_are_read_as_lmms_eval_qwen3_vl(gen_kwargs, expected) -> None:
    assert _Bridge()._settings(gen_kwargs) == expected
