"""``blind:after=K``: take the image away from generated step K on (causal visual dependence).

From the forward with :attr:`~pvm_bench.instrument.state.ForwardState.step` ``>= K`` on (step 0
is the prefill, which produces generated token 0; step t is the decode forward that feeds
generated token t and produces token t), the model no longer sees the image:

* as a *writer* of the instrument's attention site, a ``-inf`` logit bias on every image key for
  every (non-image) query row of that forward, in every decoder layer. Decode forwards have one
  query row; at ``K = 0`` the prefill's text rows are masked too (see below);
* the Persistent Visual Memory branch, when the model has one and it is on, is switched off for
  those forwards (it reads the image through its own cross-attention, not through the keys).

Tokens ``0 .. K-1`` are therefore bit-identical to the un-ablated variant (nothing is added to
their forwards), and ``K >= max_new_tokens`` is bit-identical to it altogether. Accuracy as a
function of K is the "visual dependence curve": the smallest K from which accuracy no longer
changes is how long the model actually needs the image.

``blind:after=0`` -- the text-only prior. The whole prefill runs with image keys masked for the
prompt's text rows at every layer, so *no* text position's keys/values in the KV cache carry
image information: the answer is generated from the text alone. Image query rows are left
unmasked (they may have no other key to attend to; their outputs only reach image keys, which
no text row reads). What stays is the layout: the image tokens still occupy their positions, so
the text keeps the position ids (RoPE / M-RoPE) it has with the image. TVC (Sun et al., ACL
2025, arXiv 2503.13360, Sec. 2) instead *regenerated* the continuation from a prompt without the
image; for ``K > 0`` the analogue here keeps the prompt's and the first K tokens' image-influenced
KV (they were computed seeing the image) and only stops *new* reads of the image: the question
is "does the model still need to look", not "could it have answered without ever looking".

Composition: ``pvm+blind:after=16`` (see :func:`pvm_bench.variants.resolve_variants`) runs the
PVM variant blinded from step 16; a bare ``blind:after=16`` is ``base+blind:after=16``, the base
model (PVM branch off throughout), as every bare fix is base + fix.
``pvm-bench run --ablate-after 0,16,64`` adds ``<variant>+blind:after=K`` for every variant.

Not blinded: fixes that read the visual memory themselves (``memvr`` retraces it into the FFN,
``reinject`` adds its mean) keep doing so after K in a composition such as ``memvr+blind:after=K``;
only the attention keys and the PVM branch are cut. PAI composes fully (its logit boost on image
keys is added to ``-inf``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.fixes.base import capture_visual, fix_variant
from pvm_bench.instrument import AttentionSiteError, instrument_for
from pvm_bench.variants import VariantError

if TYPE_CHECKING:
    from pvm_bench.instrument.state import ForwardState
    from pvm_bench.models.loading import LoadedModel

BLIND = "blind"
"""The registry name of the family (``blind:after=K``)."""
SEPARATOR = "+blind:after="
"""How an ablated variant's name joins the un-ablated one and K (``pvm+blind:after=16``)."""


@dataclass(frozen=True)
class BlindConfig:
    """``after``: the first generated step at which the image is invisible (0 = the whole answer)."""

    after: int = 0

    def __post_init__(self) -> None:
        if self.after < 0:
            raise ValueError("after must be >= 0 (the first blind generated step)")


@dataclass
class BlindStats:
    """Forwards that ran blind (a prefill or a decode step, counted once each)."""

    blind_forwards: int = 0


class _BlindWriter:
    """The attention-site writer: ``-inf`` on image keys from step ``after`` on, PVM off there."""

    def __init__(self, lm: LoadedModel, config: BlindConfig, stats: BlindStats) -> None:
        self.after = config.after
        self.pvm = lm.pvm
        self.stats = stats
        self.switched_off = False  # we turned the PVM branch off (and owe it a switch back on)

    def _pvm_for(self, blind: bool) -> None:
        if self.pvm is None:
            return
        if blind and self.pvm.enabled:
            self.pvm.enabled = False
            self.switched_off = True
        elif not blind and self.switched_off:
            self.pvm.enabled = True
            self.switched_off = False

    def restore(self) -> None:
        self._pvm_for(False)

    def attention_bias(self, layer: int, query: torch.Tensor, key: torch.Tensor, scaling: float | None,
                       softcap: float | None, state: ForwardState) -> torch.Tensor | None:
        blind = state.step >= self.after
        # Called in every layer before that layer's FFN, where the PVM branch sits.
        self._pvm_for(blind)
        if not blind or state.image_mask is None:
            return None
        n, q = key.shape[2], query.shape[2]
        cached = state.scratch.get((BLIND, n, q))
        if cached is not None:
            return cached
        if not state.scratch.get((BLIND, "counted")):
            state.scratch[(BLIND, "counted")] = True
            self.stats.blind_forwards += 1
        keys = state.key_image_mask(n).to(query.device) > 0  # [B, n]
        bias = torch.zeros(keys.shape[0], 1, q, n, dtype=query.dtype, device=query.device)
        rows = torch.ones(keys.shape[0], q, dtype=torch.bool, device=query.device)
        qmask = state.query_mask
        if qmask is not None and tuple(qmask.shape) == (keys.shape[0], q):
            rows = ~qmask.to(query.device)  # image query rows stay unmasked (see module docstring)
        bias.masked_fill_((rows[:, :, None] & keys[:, None, :])[:, None], float("-inf"))
        state.scratch[(BLIND, n, q)] = bias
        return bias


@contextlib.contextmanager
def blind_active(lm: LoadedModel, config: BlindConfig) -> Iterator[BlindStats]:
    """Run ``lm`` blind from generated step ``config.after`` on; everything is undone on exit."""
    stats = BlindStats()
    writer = _BlindWriter(lm, config, stats)
    with capture_visual(lm):
        try:
            detach: Any = instrument_for(lm).attention.subscribe(writer, write=True)
        except AttentionSiteError as exc:  # as PAI does: the variant cannot run on this model
            raise VariantError(f"blind:after={config.after}: {exc}") from None
        try:
            yield stats
        finally:
            detach()
            writer.restore()


def _describe(c: BlindConfig) -> str:
    if c.after == 0:
        return "text-only prior: image keys masked and PVM off for the prompt's text and every generated token"
    return f"image keys masked and PVM off from generated token {c.after} on"


VARIANT = fix_variant(BLIND, BlindConfig(), _describe, blind_active)


def ablated_name(variant: str, after: int) -> str:
    """The name ``--ablate-after`` gives variant ``variant`` blinded from step ``after`` (parsed back by
    :func:`pvm_bench.report.dependence.split_ablated`)."""
    return f"{variant}{SEPARATOR}{int(after)}"
