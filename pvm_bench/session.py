"""GenerationSession: probes installed on a model, a variant entered, batches generated.

The one way the runner, the lmms-eval bridge and the benches drive a model::

    with GenerationSession(lm, ["attention", "lens"]) as session:
        with session.variant("pai:alpha=0.2"):
            generations = session.generate(requests, max_new_tokens=256)
            generations[0].probe_records["attention"]   # per-step records of row 0

Probes are installed once on enter and uninstalled on exit (also when generation raises);
variants are entered inside them, so the probes see every variant's forwards. Everything goes
through the model's instrument (:mod:`pvm_bench.instrument`), so the order of installation does
not change what anyone sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pvm_bench.models.generation import Generation, Request
    from pvm_bench.models.loading import LoadedModel
    from pvm_bench.probes.base import Probe
    from pvm_bench.variants import Variant


class GenerationSession:
    """Probes on a loaded model for the duration of a ``with`` block.

    Args:
        lm: the loaded model (PVM attached or not).
        probes: probe instances, or names from :data:`pvm_bench.probes.registry.PROBES`.
        per_head: passed to the probe factories when ``probes`` are names.
    """

    def __init__(self, lm: LoadedModel, probes: Sequence[Probe | str] = (), *, per_head: bool = False) -> None:
        from pvm_bench.probes.registry import make_probes

        self.lm = lm
        names = [p for p in probes if isinstance(p, str)]
        made = iter(make_probes(names, per_head=per_head)) if names else iter(())
        self.probes: list[Probe] = [next(made) if isinstance(p, str) else p for p in probes]
        self._stack: ExitStack | None = None
        self.current: Variant | None = None

    def __enter__(self) -> GenerationSession:
        stack = ExitStack()
        try:
            for probe in self.probes:
                probe.install(self.lm)
                stack.callback(probe.uninstall)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    @contextlib.contextmanager
    def variant(self, variant: Variant | str) -> Iterator[Variant]:
        """Put the model in ``variant``: a spec such as ``pai:alpha=0.2`` (base + PAI: a bare fix runs with the
        PVM branch off) or ``pvm+pai``, or a variant from :func:`pvm_bench.variants.resolve_variants`."""
        from pvm_bench.variants import resolve_variants, resolved

        # a string is a spec; a bare registry part (VARIANTS["pai"]) is base + part, as its spec
        (variant,) = resolve_variants([variant]) if isinstance(variant, str) else (resolved(variant),)
        previous, self.current = self.current, variant
        try:
            with variant.active(self.lm):
                yield variant
        finally:
            self.current = previous

    @property
    def composition(self) -> str | None:
        """The current variant's resolved composition (``base+pai(alpha=0.2,...)``), None outside a variant."""
        current = self.current
        return current.composition.canonical() if current is not None and current.composition is not None else None

    def generate(self, requests: list[Request], **kwargs: Any) -> list[Generation]:
        """One left-padded batch with the session's probes; see :func:`pvm_bench.models.generation.generate`."""
        from pvm_bench.models.generation import generate

        return generate(self.lm, requests, probes=self.probes, **kwargs)
