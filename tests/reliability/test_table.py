"""Run every row of the reliability tables through the CLI (cases.py: issue 16; cases_inert.py: issue 20)."""

from __future__ import annotations

import hashlib

import pytest

from .cases import CASES, Case
from .cases_inert import INERT_CASES


def _digest(env, rel: str) -> str:
    path = env.root / rel
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


@pytest.mark.parametrize("case", [*CASES, *INERT_CASES], ids=[c.id for c in [*CASES, *INERT_CASES]])
def test_case(case: Case, env) -> None:
    argv = case.argv(env)
    before = {rel: _digest(env, rel) for rel in case.unchanged}
    code, output = env.cli(*argv)
    assert code == case.code, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if case.code != 0 and case.one_error_line:
        assert len(errors) == 1, output
    text = " ".join(errors) if case.code != 0 and not case.words_in_output else output
    for word in case.words:
        assert word in text, f"{word!r} not in: {text}"
    for word in case.absent:
        assert word not in output, f"misleading {word!r} in: {output}"
    for rel, digest in before.items():
        assert _digest(env, rel) == digest, f"{rel} changed"
    if case.check is not None:
        case.check(env)
