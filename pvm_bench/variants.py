"""Variants: the model configurations compared within one run (``base``, ``pvm``, ...).

A variant is a context manager factory over a loaded model: inside ``variant.active(lm)``
the model behaves as that variant. All variants of a run share one loaded model, so a
``pvm`` run keeps the adapter attached and the ``base`` variant switches the branch off
(bit-identical to the model without PVM).

Registry. :data:`VARIANTS` maps names to variants: ``base`` and ``pvm`` here, the training-free
fixes by ``"module:attribute"`` reference in :data:`BUILTIN_VARIANTS` (imported on first use, so
registering has no import side effect and this module imports no fix). A new fix is one module
plus one line there; other packages add theirs through the ``pvm_bench.variants`` entry-point
group (``name = "their_pkg.module:VARIANT"``) or with :func:`register_variant`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pvm_bench.errors import UserError
from pvm_bench.instrument.registry import PluginRegistry
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


BASE = Variant("base", "the model as loaded, any PVM branch switched off", _base)
PVM = Variant("pvm", "the model with its Persistent Visual Memory branch on", _pvm, requires_pvm=True)

BUILTIN_VARIANTS: dict[str, str] = {
    "base": "pvm_bench.variants:BASE",
    "pvm": "pvm_bench.variants:PVM",
    "pai": "pvm_bench.fixes.pai:VARIANT",
    "memvr": "pvm_bench.fixes.memvr:VARIANT",
    "reinject": "pvm_bench.fixes.reinject:VARIANT",
    "blind": "pvm_bench.fixes.blind:VARIANT",
}
"""Name -> ``module:attribute`` of the variants that ship with pvm-bench."""

VARIANTS: PluginRegistry[Variant] = PluginRegistry("variant", "pvm_bench.variants", BUILTIN_VARIANTS)
"""Variant name -> :class:`Variant` (built-ins, entry points, runtime registrations)."""


def register_variant(variant: Variant) -> None:
    """Add a variant under its name (replacing one of the same name)."""
    VARIANTS.register(variant.name, variant)


def resolve_variants(names: list[str]) -> list[Variant]:
    """Variants for ``names``; ``name:key=value:key=value`` configures a parametrised variant.

    The configured variant's name is the spec as given (it labels samples.jsonl rows).
    """
    out = []
    for spec in names:
        if "+" in spec:  # composition: pvm+blind:after=16 enters pvm, then blind:after=16
            out.append(compose(resolve_variants(spec.split("+")), spec))
            continue
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


def compose(parts: list[Variant], name: str) -> Variant:
    """One variant that enters ``parts`` in order (``pvm+blind:after=16``) and leaves them in reverse."""

    @contextlib.contextmanager
    def enter(lm: LoadedModel) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for part in parts:
                stack.enter_context(part.active(lm))
            yield

    description = " + ".join(part.description for part in parts)
    return Variant(name, description, enter, any(part.requires_pvm for part in parts))
