"""Probe registry: ``--probes attention,lens,...`` names -> probe factories."""

from __future__ import annotations

from collections.abc import Callable

from pvm_bench.errors import UserError
from pvm_bench.probes.attention import AttentionProbe
from pvm_bench.probes.base import Probe
from pvm_bench.probes.lens import LensProbe


class UnknownProbeError(UserError, ValueError):
    """A probe name is not in :data:`PROBES`; the message lists the known names."""


def _attention(per_head: bool) -> Probe:
    return AttentionProbe(per_head=per_head)


def _lens(per_head: bool) -> Probe:
    # Per-layer logit lens is opt-in and unrelated to --per-head; entropy/margin are always on.
    return LensProbe()


def _branch(per_head: bool) -> Probe:
    from pvm_bench.probes.branch import BranchProbe

    return BranchProbe()


PROBES: dict[str, Callable[[bool], Probe]] = {
    "attention": _attention,
    "lens": _lens,
    "branch": _branch,
}
"""Probe name -> factory taking ``per_head``. Other modules add entries (e.g. ``branch`` for PVM)."""


def make_probes(names: list[str], per_head: bool = False) -> list[Probe]:
    """Instantiate the probes ``names`` (order kept, duplicates and blanks dropped).

    Raises:
        UnknownProbeError: a name is not registered in :data:`PROBES`.
    """
    wanted = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    unknown = [n for n in wanted if n not in PROBES]
    if unknown:
        raise UnknownProbeError(
            f"unknown probe{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(sorted(PROBES))}"
        )
    return [PROBES[name](per_head) for name in wanted]
