"""Issue 20's run-side rows (cases_integrity.py), run like the reliability table (test_table.py)."""

from __future__ import annotations

import json
import time

import pytest

from .cases_integrity import INTEGRITY_CASES
from .test_table import test_case as run_case


@pytest.mark.parametrize("case", INTEGRITY_CASES, ids=[getattr(c, "id", None) for c in INTEGRITY_CASES])
def test_integrity_case(case, env) -> None:
    start = time.monotonic()
    run_case(case, env)
    if case.id.startswith(("offline-", "hub-", "data-export-")):
        assert time.monotonic() - start < 20, "the hub was not given up on at once"


def test_a_model_failing_on_every_sample_from_the_start_fails_the_run(env) -> None:
    """Not a per-sample problem: nothing generated yet and every sample fails alone too."""
    from .cases_integrity import _model_fails_on

    _model_fails_on(env, lambda sample_id: True)
    code, output = env.cli(*env.run_args())
    assert code != 0
    record = json.loads((env.out / "r" / "run.json").read_text())
    assert record["status"] == "failed" and "IndexError" in record["error"]
    assert not (env.out / "r" / "samples.jsonl").read_text().strip()
