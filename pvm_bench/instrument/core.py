"""One :class:`Instrument` per model: the forward state, the hook sites and the attention site.

``instrument_for(model)`` returns the model's instrument (created on first use, kept on the
transformers model). Consumers -- probes, PVM, training-free fixes -- take the capture with
:meth:`Instrument.acquire` (reference counted: the state hooks are installed while anyone holds
them) and then read :attr:`Instrument.state`, hook :attr:`Instrument.sites` and subscribe to
:attr:`Instrument.attention`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from pvm_bench.instrument.attention import AttentionSite
from pvm_bench.instrument.sites import Sites
from pvm_bench.instrument.state import ForwardState, StateCapture
from pvm_bench.models.families import FamilySpec, family_for, first_config_value, resolve_path

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

_ATTR = "_pvm_bench_instrument"


class Instrument:
    """Everything that watches or changes one model while it generates goes through here.

    Attributes:
        state: the :class:`ForwardState` (valid while the capture is acquired).
        sites: named hook sites (:class:`~pvm_bench.instrument.sites.Sites`).
        attention: the attention site (:class:`~pvm_bench.instrument.attention.AttentionSite`),
            whose modules are resolved lazily (a family without ``self_attn`` fails only there).
    """

    def __init__(self, hf_model: Any, family: FamilySpec) -> None:
        self.hf_model: Any = hf_model
        self.family = family
        self.state = ForwardState()
        self.sites = Sites(hf_model, family)
        image_token_id = first_config_value(hf_model.config, family.image_token_fields)
        self.image_token_id = -1 if image_token_id is None else image_token_id
        path = family.language_model_path.split(".")
        # Every module from the top-level model down to (not including) the language model may be
        # called with input_ids; the language model itself only sees inputs_embeds.
        outer = [hf_model] + [resolve_path(hf_model, ".".join(path[:i])) for i in range(1, len(path))]
        self._capture = StateCapture(self.state, self.image_token_id, self.sites.language_model, outer,
                                     hf_model.get_input_embeddings())
        self._holders = 0
        self._attention: AttentionSite | None = None

    @property
    def attention(self) -> AttentionSite:
        if self._attention is None:
            modules = [self.sites.module(f"layers.{i}.attn") for i in range(self.sites.num_layers)]
            self._attention = AttentionSite(self.hf_model, modules, self.state, self.family.name)
        return self._attention

    @property
    def num_layers(self) -> int:
        return self.sites.num_layers

    def acquire(self) -> Callable[[], None]:
        """Install the state capture (if not yet); returns the matching release function (idempotent)."""
        self._holders += 1
        self._capture.install()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._holders -= 1
            if self._holders <= 0:
                self._holders = 0
                self._capture.remove()

        return release


def instrument_for(model: LoadedModel | nn.Module, family: FamilySpec | None = None) -> Instrument:
    """The instrument of ``model`` (a LoadedModel or a transformers VLM of a known family)."""
    hf: Any = model.hf_model if hasattr(model, "hf_model") else model
    inst: Any = hf.__dict__.get(_ATTR)
    if inst is None:
        spec = family or getattr(model, "spec", None) or family_for(hf.config.model_type)
        inst = Instrument(hf, spec)
        hf.__dict__[_ATTR] = inst
    return inst
