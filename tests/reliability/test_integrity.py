"""Issue 20's run-side rows (cases_integrity.py), run like the reliability table (test_table.py)."""

from __future__ import annotations

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
