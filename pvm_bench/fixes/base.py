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


def parse_params(cls: type, params: Mapping[str, str], variant: str) -> Any:
    """Build dataclass ``cls`` from string ``params``, converting each to its field's default type.

    Raises:
        VariantError: unknown key or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in fields:
            raise VariantError(f"variant '{variant}': unknown parameter '{key}'; known: {', '.join(fields)}")
        default = fields[key].default
        try:
            if raw.lower() in ("none", "null") and default is None:
                kwargs[key] = None
            elif isinstance(default, bool):
                kwargs[key] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int) or (default is None and raw.lstrip("-").isdigit()):
                kwargs[key] = int(raw)
            else:
                kwargs[key] = float(raw)
        except ValueError:
            raise VariantError(f"variant '{variant}': parameter {key}={raw!r} is not a number") from None
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
                active: Callable[[LoadedModel, Any], contextlib.AbstractContextManager[Any]]) -> Variant:
    """The :class:`~pvm_bench.variants.Variant` of one fix at ``config`` (dataclass of hyperparameters)."""
    return Variant(
        name, describe(config), lambda lm: active(lm, config),
        configure=lambda params: fix_variant(name, parse_params(type(config), params, name), describe, active),
    )
