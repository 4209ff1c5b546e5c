"""Variants: the model configurations compared within one run (``base``, ``pvm``, ...).

A variant is a context manager factory over a loaded model: inside ``variant.active(lm)``
the model behaves as that variant. All variants of a run share one loaded model, so a
``pvm`` run keeps the adapter attached and the ``base`` variant switches the branch off
(bit-identical to the model without PVM).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pvm_bench.errors import UserError
from pvm_bench.models.loading import LoadedModel


class VariantError(UserError):
    """A variant cannot be applied to this model/run."""


@dataclass(frozen=True)
class Variant:
    """A named model configuration.

    ``enter`` receives the loaded model and returns a context manager that puts the model
    in this configuration and restores it on exit.
    """

    name: str
    description: str
    enter: Callable[[LoadedModel], contextlib.AbstractContextManager[Any]]
    requires_pvm: bool = False

    @contextlib.contextmanager
    def active(self, lm: LoadedModel) -> Iterator[None]:
        if self.requires_pvm and lm.pvm is None:
            raise VariantError(f"variant '{self.name}' needs a PVM adapter; pass --pvm ADAPTER_DIR")
        with self.enter(lm):
            yield


def _base(lm: LoadedModel) -> contextlib.AbstractContextManager[Any]:
    return lm.pvm.disabled() if lm.pvm is not None else contextlib.nullcontext()


def _pvm(lm: LoadedModel) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("base", "the model as loaded, any PVM branch switched off", _base),
        Variant("pvm", "the model with its Persistent Visual Memory branch on", _pvm, requires_pvm=True),
    )
}


def register_variant(variant: Variant) -> None:
    """Add a variant (training-free fixes register themselves here)."""
    VARIANTS[variant.name] = variant


def resolve_variants(names: list[str]) -> list[Variant]:
    out = []
    for name in names:
        if name not in VARIANTS:
            raise VariantError(f"unknown variant '{name}'; known: {', '.join(VARIANTS)}")
        out.append(VARIANTS[name])
    return out
