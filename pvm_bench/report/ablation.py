"""Names of ablated variants: ``V+blind:after=K`` (:mod:`pvm_bench.fixes.blind`).

One small module so that the views (:mod:`pvm_bench.report.views`) and the dependence rows
(:mod:`pvm_bench.report.dependence`, which re-exports :func:`split_ablated`) read variant names the
same way without importing each other.
"""

from __future__ import annotations

import re

_ABLATED = re.compile(r"^(?P<base>.*)\+blind:after=(?P<k>\d+)$")


def split_ablated(variant: str) -> tuple[str, int] | None:
    """``"pvm+blind:after=16"`` -> ``("pvm", 16)``; None for a variant that is not ``V+blind:after=K``."""
    m = _ABLATED.match(variant)
    return (m["base"], int(m["k"])) if m else None


__all__ = ["split_ablated"]
