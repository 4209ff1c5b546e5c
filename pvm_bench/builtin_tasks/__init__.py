"""The built-in tasks: ordinary modules of this package, each defining ``TASKS`` and/or ``GROUPS``.

The registry (:func:`pvm_bench.tasks.base.get_registry`) imports every module named in
:data:`MODULES` by its dotted name, in this order; a new built-in task is one module here plus
one entry in :data:`MODULES` (a test checks that the list and the folder agree).
"""

from __future__ import annotations

#: Task modules under this package, in registration order (alphabetical, as the
#: folder was read before; a later module overrides a same-named task).
MODULES: tuple[str, ...] = (
    "ai2d",
    "groups",
    "hallusionbench",
    "length_diagnostics",
    "mathverse",
    "mathvision",
    "mathvista",
    "mmbench",
    "mmmu",
    "mmstar",
    "mmt",
)


def module_names() -> list[str]:
    """Fully qualified names of the built-in task modules (``pvm_bench.builtin_tasks.mmmu``, ...)."""
    return [f"{__name__}.{name}" for name in MODULES]
