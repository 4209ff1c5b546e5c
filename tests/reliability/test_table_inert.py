"""Run every row of the issue-20 table (security, report-side integrity) through the CLI."""

from __future__ import annotations

import hashlib

import pytest

from .cases_inert import INERT_CASES, InertCase


def _digest(env, rel: str) -> str:
    path = env.root / rel
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


@pytest.mark.parametrize("case", INERT_CASES, ids=[c.id for c in INERT_CASES])
def test_inert_case(case: InertCase, env) -> None:
    argv = case.argv(env)
    before = {rel: _digest(env, rel) for rel in case.unchanged}
    code, output = env.cli(*argv)
    assert code == case.code, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if case.code in (2, 3):
        assert len(errors) == 1, output
        text = errors[0]
    else:
        text = output
    for word in case.words:
        assert word in text, f"{word!r} not in: {text}"
    for word in case.absent:
        assert word not in output, f"{word!r} in: {output}"
    for rel, digest in before.items():
        assert _digest(env, rel) == digest, f"{rel} changed"
    if case.check is not None:
        case.check(env)
