"""One instrumentation layer: per-forward state, named hook sites, one attention dispatcher.

Probes read sites, PVM and the training-free fixes write them (modelled on TransformerLens hook
points and nnsight envoys, in our own code):

- :class:`ForwardState` (:mod:`.state`): image mask per sample, visual memory (the embeddings
  placed at image positions at prefill, padded per row), step, cache length, bypass flag --
  captured once per forward for every consumer;
- :class:`Sites` (:mod:`.sites`): ``layers.{i}``, ``layers.{i}.attn|ffn_in|ffn_out|mlp``,
  ``final_norm``, ``lm_head``, ``model``, resolved from the family table;
- :class:`AttentionSite` (:mod:`.attention`): one registered attention function, writers (logit
  bias on the last query) and readers (last-query softmax).

Probes and variants are found by name in the package's one :class:`pvm_bench.registry.Registry`.

``instrument_for(model)`` gives a model's :class:`Instrument`.
"""

from pvm_bench.instrument.attention import ATTN_NAME, AttentionSite, AttentionSiteError
from pvm_bench.instrument.core import Instrument, instrument_for
from pvm_bench.instrument.sites import LogitLens, SiteError, Sites
from pvm_bench.instrument.state import ForwardState

__all__ = [
    "ATTN_NAME", "AttentionSite", "AttentionSiteError", "ForwardState", "Instrument", "LogitLens",
    "SiteError", "Sites", "instrument_for",
]
