"""What the training-free fixes share: typed parameters, the variant of one fix, the visual state.

A fix is one module that defines a context manager ``active(lm, config)`` (install hooks on
enter, remove every one on exit, also when generation raises), a frozen dataclass of
hyperparameters with published defaults, and ``VARIANT = fix_variant(name, Config(), describe,
active)``; one line in :data:`pvm_bench.variants.BUILTIN_VARIANTS` makes it a ``--variants``
name. Everything a fix reads about the forward in flight (image mask, visual memory, step,
bypass) is the instrument's :class:`~pvm_bench.instrument.state.ForwardState`, taken with
:func:`capture_visual`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pvm_bench.instrument import ForwardState, instrument_for
from pvm_bench.instrument.sites import hidden_arg, replace_hidden_arg
from pvm_bench.variants import Variant, VariantError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

VisualState = ForwardState
"""The per-forward state the fixes read (an alias kept for the fixes' public API)."""

__all__ = ["VisualState", "capture_visual", "fix_variant", "hidden_arg", "parse_params", "replace_hidden_arg"]


_INT = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _field_types(cls: type) -> dict[str, tuple[Any, ...]]:
    """Field name -> the accepted types of a dataclass field (``int | None`` -> ``(int, NoneType)``)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[Any, ...]] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        out[f.name] = tuple(args)
    return out


def parse_value(raw: str, accepted: tuple[Any, ...]) -> Any:
    """``raw`` as the first of the ``accepted`` types that takes it, or ValueError saying what it is not.

    Strict on purpose (a variant's configuration is its identity, see
    :func:`pvm_bench.variants.resolve_variants`): integers are ASCII digits with an optional minus (``+`` joins
    composition parts)
    (``03`` is 3; ``1e12``, ``1_0`` and non-ASCII digits such as ``٣`` are refused), numbers are
    plain decimals with an optional exponent (``0.2``, ``1e-3``; no ``_``, ``inf`` or ``nan``),
    booleans are true/false/yes/no/on/off/1/0, ``none``/``null`` is None where a field allows it,
    and a ``Literal`` field takes one of its values.
    """
    text = raw.strip()
    if type(None) in accepted and text.lower() in ("none", "null"):
        return None
    literals = [a for a in accepted if typing.get_origin(a) is typing.Literal]
    for lit in literals:
        if text in typing.get_args(lit):
            return text
    if bool in accepted:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError("is not a boolean (true/false)")
    if int in accepted:
        if _INT.fullmatch(text):
            return int(text)
        if float not in accepted:
            raise ValueError("is not an integer (ASCII digits, e.g. 3)")
    if float in accepted:
        if _DECIMAL.fullmatch(text):
            return float(text)
        raise ValueError("is not a plain decimal number (e.g. 0.2 or 1e-3)")
    if str in accepted:
        return text
    if literals:
        choices = ", ".join(str(v) for lit in literals for v in typing.get_args(lit))
        raise ValueError(f"is not one of {choices}")
    raise ValueError(f"cannot be given as text (type {accepted})")


def parse_params(cls: type, params: Mapping[str, str], variant: str) -> Any:
    """Build dataclass ``cls`` from string ``params``, each parsed strictly to its field's type (:func:`parse_value`).

    Raises:
        VariantError: unknown key, a value its field does not take, or a value the config refuses.
    """
    fields = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in fields:
            raise VariantError(f"variant '{variant}': unknown parameter '{key}'; known: {', '.join(fields)}")
        try:
            kwargs[key] = parse_value(raw, fields[key])
        except ValueError as exc:
            raise VariantError(f"variant '{variant}': parameter {key}={raw!r} {exc}") from None
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise VariantError(f"variant '{variant}': {exc}") from None


@contextlib.contextmanager
def capture_visual(lm: LoadedModel) -> Iterator[ForwardState]:
    """The model's per-forward state, captured while the block runs (shared with PVM and probes).

    A forward on an empty cache is a prefill (step 0: new mask and memory), any other forward a
    decode step. Forwards made while ``state.bypass`` is set are ignored.
    """
    inst = instrument_for(lm)
    release = inst.acquire()
    try:
        yield inst.state
    finally:
        release()


def fix_variant(name: str, config: Any, describe: Callable[[Any], str],
                active: Callable[[LoadedModel, Any], contextlib.AbstractContextManager[Any]],
                effective: Callable[[LoadedModel, Any], dict[str, Any]] | None = None) -> Variant:
    """The :class:`~pvm_bench.variants.Variant` of one fix at ``config`` (dataclass of hyperparameters).

    ``effective(lm, config)``: the settings the fix resolves on a given model (recorded in run.json).
    """
    return Variant(
        name,
        describe(config),
        lambda lm: active(lm, config),
        configure=lambda params: fix_variant(
            name, parse_params(type(config), params, name), describe, active, effective
        ),
        config=config,
        effective=(lambda lm: effective(lm, config)) if effective is not None else None,
    )
