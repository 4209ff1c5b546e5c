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
    # Parametrised variants (``pai:alpha=0.2``): params -> the configured variant. None = no params.
    configure: Callable[[dict[str, str]], Variant] | None = None

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
    """Variants for ``names``; ``name:key=value:key=value`` configures a parametrised variant.

    The configured variant's name is the spec as given (it labels samples.jsonl rows).
    """
    import pvm_bench.fixes  # noqa: F401  (registers the training-free fixes)

    out = []
    for spec in names:
        name, *parts = spec.split(":")
        if name not in VARIANTS:
            raise VariantError(f"unknown variant '{name}'; known: {', '.join(VARIANTS)}")
        variant = VARIANTS[name]
        if parts:
            if variant.configure is None:
                raise VariantError(f"variant '{name}' takes no parameters (got '{spec}')")
            params: dict[str, str] = {}
            for part in parts:
                key, eq, value = part.partition("=")
                if not eq or not key.strip():
                    raise VariantError(f"variant '{spec}': parameters are key=value, separated by ':'")
                params[key.strip()] = value.strip()
            variant = variant.configure(params)
            variant = Variant(spec, variant.description, variant.enter, variant.requires_pvm, variant.configure)
        out.append(variant)
    return out
