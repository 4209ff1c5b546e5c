"""Variants: the model configurations compared within one run (``base``, ``pvm``, ``pai``, ...).

A variant is a *resolved composition over the PVM branch state*: a branch state (``base``: any
PVM branch switched off; ``pvm``: the branch on) plus an ordered list of configured fixes. A
bare fix means base + fix, whatever was loaded: ``pai`` is ``base+pai`` even when the model was
loaded with ``--pvm``; ``pvm+pai`` composes with the branch on explicitly. Every spec resolves
to its :class:`Composition` (branch, fixes with every hyperparameter parsed to its typed value,
defaults included), and that -- not the spelling -- is the variant's identity:

- contradictions and repeats inside one spec are refused (``base+pvm``, ``pvm+pvm``,
  ``pai+pai:alpha=0.1``, a parameter given twice as in ``pai:alpha=0:alpha=5``);
- two specs of one ``--variants`` list that resolve to the same configuration are refused
  (``blind:after=3`` and ``blind:after=03``; ``pai`` and ``pai:alpha=0.2``);
- run.json (``variant_compositions``) and every samples.jsonl record (``composition``) carry the
  canonical form, e.g. ``pai`` -> ``base+pai(alpha=0.2,start_layer=2,...)``.

Spec syntax: ``+`` joins the parts of a composition, ``:`` separates a part's ``key=value``
parameters (``pvm+pai:alpha=0.5:gamma=1``; ``,`` separates variants on the command line).

All variants of a run share one loaded model; inside ``variant.active(lm)`` the model behaves
as that variant and is restored on exit.

Registry. :data:`VARIANTS` maps names to the parts a spec is made of: the branch states ``base``
and ``pvm`` here, the training-free fixes by ``"module:attribute"`` reference in
:data:`BUILTIN_VARIANTS` (imported on first use, so registering has no import side effect and
this module imports no fix). A new fix is one module plus one line there; other packages add
theirs through the ``pvm_bench.variants`` entry-point group (``name = "their_pkg.module:VARIANT"``)
or with :func:`register_variant`. A registered variant that is not a branch state is a fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pvm_bench.errors import UserError
from pvm_bench.models.loading import LoadedModel
from pvm_bench.registry import Registry

Branch = Literal["base", "pvm"]


class VariantError(UserError):
    """A variant cannot be applied to this model/run."""


@dataclass(frozen=True)
class Variant:
    """A named model configuration.

    ``enter`` receives the loaded model and returns a context manager that puts the model
    in this configuration and restores it on exit.

    Attributes:
        configure: parametrised parts (``pai:alpha=0.2``): params -> the configured part; None = no params.
        config: a fix's typed hyperparameters (a frozen dataclass), part of its identity.
        branch: ``"base"``/``"pvm"`` for the two branch states, None for a fix.
        composition: set on what :func:`resolve_variants` returns (the resolved configuration).
        effective: model -> the settings a fix resolves on that model (e.g. MemVR's per-family
            recipe, PAI's last layer), recorded in run.json; None = nothing model-dependent.
    """

    name: str
    description: str
    enter: Callable[[LoadedModel], contextlib.AbstractContextManager[Any]]
    requires_pvm: bool = False
    configure: Callable[[dict[str, str]], Variant] | None = None
    config: Any = None
    branch: Branch | None = None
    composition: Composition | None = None
    effective: Callable[[LoadedModel], dict[str, Any]] | None = None

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


BASE = Variant("base", "the model without its PVM branch (switched off when one is loaded)", _base, branch="base")
PVM = Variant("pvm", "the model with its Persistent Visual Memory branch on", _pvm, requires_pvm=True, branch="pvm")

BUILTIN_VARIANTS: dict[str, str] = {
    "base": "pvm_bench.variants:BASE",
    "pvm": "pvm_bench.variants:PVM",
    "pai": "pvm_bench.fixes.pai:VARIANT",
    "memvr": "pvm_bench.fixes.memvr:VARIANT",
    "reinject": "pvm_bench.fixes.reinject:VARIANT",
    "blind": "pvm_bench.fixes.blind:VARIANT",
}
"""Name -> ``module:attribute`` of the variants that ship with pvm-bench."""

VARIANTS: Registry[Variant] = Registry("variant", "pvm_bench.variants", BUILTIN_VARIANTS,
                                       listing="see --variants in `pvm-bench run --help`")
"""Variant name -> :class:`Variant` (built-ins, entry points, runtime registrations)."""


def register_variant(variant: Variant) -> None:
    """Add a variant under its name (replacing one of the same name)."""
    VARIANTS.register(variant.name, variant)


def _typed(value: Any) -> Any:
    """A parameter value as JSON-able text-stable data (floats keep their repr: 0.2, 1.0)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def fix_params(fix: Variant) -> dict[str, Any]:
    """Every hyperparameter of a configured fix, defaults included, as typed values (``{}`` without config)."""
    if fix.config is None or not dataclasses.is_dataclass(fix.config):
        return {}
    return {f.name: _typed(getattr(fix.config, f.name)) for f in dataclasses.fields(fix.config)}


@dataclass(frozen=True)
class Composition:
    """A resolved variant: the PVM branch state and the configured fixes entered after it, in order."""

    branch: Branch
    fixes: tuple[Variant, ...] = ()

    @property
    def key(self) -> tuple[Any, ...]:
        """The identity of the configuration (equal keys = the same model behaviour by construction)."""
        return (self.branch, *((f.name, tuple(fix_params(f).items())) for f in self.fixes))

    def canonical(self) -> str:
        """``base+pai(alpha=0.2,start_layer=2,...)``: the branch, then each fix with all its parameters."""
        parts = [self.branch]
        for fix in self.fixes:
            params = fix_params(fix)
            parts.append(f"{fix.name}({','.join(f'{k}={v}' for k, v in params.items())})" if params else fix.name)
        return "+".join(parts)

    def as_dict(self, lm: LoadedModel | None = None) -> dict[str, Any]:
        """Structured form for run.json; with ``lm``, each fix's model-dependent settings under ``effective``."""
        fixes = []
        for fix in self.fixes:
            entry: dict[str, Any] = {"name": fix.name, "params": fix_params(fix)}
            if lm is not None and fix.effective is not None:
                entry["effective"] = fix.effective(lm)
            fixes.append(entry)
        return {"canonical": self.canonical(), "branch": self.branch, "fixes": fixes}


def _part(spec: str, text: str) -> Variant:
    """One part of a spec (``pai:alpha=0.2``) configured; a parameter given twice is refused."""
    name, *params = text.split(":")
    name = name.strip()
    if not name:
        raise VariantError(f"variant '{spec}': empty part; write parts as name or name:key=value joined by '+'")
    if name not in VARIANTS:
        raise VariantError(f"{VARIANTS.unknown(name)} (in '{spec}')")
    variant = VARIANTS[name]
    if not params:
        return variant
    if variant.configure is None:
        raise VariantError(f"variant '{name}' takes no parameters (got '{spec}')")
    values: dict[str, str] = {}
    for param in params:
        key, eq, value = param.partition("=")
        key = key.strip()
        if not eq or not key:
            raise VariantError(f"variant '{spec}': parameters are key=value, separated by ':'")
        if key in values:
            raise VariantError(f"variant '{spec}': parameter '{key}' is given twice; give it once")
        values[key] = value
    return variant.configure(values)


def resolve_composition(spec: str) -> Composition:
    """The :class:`Composition` of one spec (``pai``, ``pvm+blind:after=16``, ``base``).

    Raises:
        VariantError: unknown names or parameters, contradictory branch states (``base+pvm``),
            a branch state or a fix given twice (``pvm+pvm``, ``pai+pai:alpha=0``).
    """
    branch: Branch | None = None
    fixes: list[Variant] = []
    for text in spec.split("+"):
        part = _part(spec, text)
        if part.branch is not None:
            if branch == part.branch:
                raise VariantError(f"variant '{spec}': '{branch}' is given twice; give the branch state once")
            if branch is not None:
                raise VariantError(
                    f"variant '{spec}': '{branch}' and '{part.branch}' contradict (base = PVM branch off, "
                    "pvm = on); give one"
                )
            branch = part.branch
        elif any(f.name == part.name for f in fixes):
            raise VariantError(f"variant '{spec}': fix '{part.name}' is given twice; give each fix once")
        else:
            fixes.append(part)
    return Composition(branch or "base", tuple(fixes))


def _enter_for(composition: Composition) -> Callable[[LoadedModel], contextlib.AbstractContextManager[Any]]:
    @contextlib.contextmanager
    def enter(lm: LoadedModel) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(VARIANTS[composition.branch].active(lm))  # the branch state first
            for fix in composition.fixes:
                stack.enter_context(fix.active(lm))
            yield

    return enter


def resolve_variants(names: Sequence[str]) -> list[Variant]:
    """Variants for ``names`` (specs, see the module docstring), each named by its spec as given.

    Raises:
        VariantError: a bad spec (:func:`resolve_composition`), or two specs that resolve to the
            same configuration.
    """
    out: list[Variant] = []
    seen: dict[tuple[Any, ...], str] = {}
    for spec in names:
        composition = resolve_composition(spec)
        if spec in seen.values():
            raise VariantError(f"--variants lists '{spec}' more than once; give each variant once")
        if composition.key in seen:
            raise VariantError(
                f"variants '{seen[composition.key]}' and '{spec}' are the same configuration "
                f"({composition.canonical()}); give it once"
            )
        seen[composition.key] = spec
        if composition.branch == "base" and len(composition.fixes) == 1:
            description = composition.fixes[0].description  # a bare fix: base is implied
        else:
            description = " + ".join(VARIANTS[p].description if isinstance(p, str) else p.description
                                     for p in (composition.branch, *composition.fixes))
        out.append(Variant(spec, description, _enter_for(composition), requires_pvm=composition.branch == "pvm",
                           composition=composition))
    return out


def resolved(variant: Variant) -> Variant:
    """``variant`` as a resolved composition. A registry part entered on its own (``VARIANTS["pai"]``,
    a configured fix) is base + that part, as its spec would be (never the fix on the model as loaded,
    PVM branch included); a branch state is itself; a resolved variant is returned as is."""
    if variant.composition is not None:
        return variant
    composition = Composition(variant.branch or "base", () if variant.branch else (variant,))
    return Variant(variant.name, variant.description, _enter_for(composition),
                   requires_pvm=composition.branch == "pvm", composition=composition)


def compositions(variants: Sequence[Variant], lm: LoadedModel | None = None) -> dict[str, dict[str, Any]]:
    """run.json's ``variant_compositions``: variant name -> :meth:`Composition.as_dict`."""
    return {v.name: v.composition.as_dict(lm) for v in variants if v.composition is not None}
