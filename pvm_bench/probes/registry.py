"""Probe registry: ``--probes attention,lens,...`` names -> probe factories.

A factory takes ``per_head`` (the run's ``--per-head`` flag) and returns a new
:class:`~pvm_bench.probes.base.Probe`. Built-ins are listed below as ``"module:attribute"``
references (imported on first use). A new probe is one module plus one line in
:data:`BUILTIN_PROBES`; other packages add theirs through the ``pvm_bench.probes`` entry-point
group (``name = "their_pkg.module:factory"``) or at runtime with ``PROBES.register(name, factory)``.
"""

from __future__ import annotations

from collections.abc import Callable

from pvm_bench.errors import UserError
from pvm_bench.probes.base import Probe
from pvm_bench.registry import Registry

ProbeFactory = Callable[[bool], Probe]

BUILTIN_PROBES: dict[str, str] = {
    "attention": "pvm_bench.probes.attention:make_probe",
    "lens": "pvm_bench.probes.lens:make_probe",
    "branch": "pvm_bench.probes.branch:make_probe",
    "maps": "pvm_bench.probes.maps:make_probe",
}
"""Name -> ``module:factory`` of the probes that ship with pvm-bench."""

PROBES: Registry[ProbeFactory] = Registry("probe", "pvm_bench.probes", BUILTIN_PROBES,
                                          listing="see --probes in `pvm-bench run --help`")
"""Probe name -> factory taking ``per_head`` (built-ins, entry points, runtime registrations)."""


class UnknownProbeError(UserError, ValueError):
    """A probe name is not in :data:`PROBES`; the message names the close matches."""


def register_probe(name: str, factory: ProbeFactory | str) -> None:
    """Make ``--probes name`` available (``factory`` may be a ``module:attribute`` reference)."""
    PROBES.register(name, factory)


def make_probes(names: list[str], per_head: bool = False) -> list[Probe]:
    """Instantiate the probes ``names`` (order kept, duplicates and blanks dropped).

    Raises:
        UnknownProbeError: a name is not registered in :data:`PROBES`.
    """
    wanted = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    unknown = [n for n in wanted if n not in PROBES]
    if unknown:
        raise UnknownProbeError(PROBES.unknown(unknown[0]))
    return [PROBES[name](per_head) for name in wanted]
