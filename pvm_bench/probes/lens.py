"""Convergence probe ("lens"): next-token entropy and margin per step, optional logit lens per layer.

Per generated step (step 0 = the distribution produced by the prefill forward, i.e. for the
first generated token; step t = the forward that feeds generated token t) the probe observes
the scores transformers hands to its logits processors and records:

- ``entropy``: entropy in nats of the softmax of those scores (tokens suppressed to ``-inf``
  carry no mass);
- ``margin``: probability of the top-1 token minus that of the top-2 ("hesitation" when small).

With ``per_layer=True`` it also applies the model's final norm and ``lm_head`` to every decoder
layer's output at the last position (forward hooks, one ``[B, hidden]`` vector per layer per
step) and records per (step, layer) ``lens_kl`` = KL(final || lens) in nats and
``lens_top1_agree``; records then also carry ``lens_first_agree_layer``, the earliest
layer whose lens top-1 equals the final top-1 (-1 when none does). Per-layer lens costs one
``lm_head`` product per layer per step, so it is off by default.

Everything is computed on the model's device into preallocated buffers; records are built once
per batch in :meth:`LensProbe.end_batch`. The step comes from the instrument's
:class:`~pvm_bench.instrument.state.ForwardState`; the layer outputs from the ``layers.{i}``
sites and the lens itself (final norm + lm_head, soft-capped like the model) from
:meth:`pvm_bench.instrument.sites.Sites.lens`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessor

from pvm_bench.instrument import SiteError, instrument_for
from pvm_bench.instrument.sites import LogitLens, layer_output
from pvm_bench.probes.base import BatchContext, Probe, ProbeError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

STEP_KEYS = ("step", "entropy", "margin")
"""Keys of the per-step records (plus ``lens_first_agree_layer`` with ``per_layer``)."""
LAYER_KEYS = ("step", "layer", "lens_kl", "lens_top1_agree")
"""Keys of the per-(step, layer) records written when ``per_layer`` is set."""


class _LensProcessor(LogitsProcessor):
    """Observes each step's scores for :class:`LensProbe`; returns them unchanged."""

    def __init__(self, probe: LensProbe) -> None:
        self.probe = probe

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.probe._observe(scores)
        return scores


def _entropy_and_logp(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(entropy [B], log-probs [B, V], probs [B, V])`` of ``scores``; -inf scores give 0 mass."""
    logp = torch.log_softmax(scores.float(), dim=-1)
    p = logp.exp()
    # p * logp is NaN where logp = -inf (p = 0); those terms are 0 by continuity.
    entropy = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)
    return entropy, logp, p


class LensProbe(Probe):
    """Next-token entropy and top-1/top-2 margin per step; optional per-layer logit lens.

    Args:
        per_layer: also run the logit lens on every decoder layer (KL to the final distribution,
            top-1 agreement). Needs the language model's final norm (``<language_model>.norm``)
            and the output embeddings; a family without them raises :class:`ProbeError`.

    Records per row: one per step with :data:`STEP_KEYS`; with ``per_layer`` instead one per
    step and layer with :data:`STEP_KEYS` + :data:`LAYER_KEYS` + ``lens_first_agree_layer``
    (the step fields repeated on every layer, so all records share the same keys).
    """

    name = "lens"

    def __init__(self, per_layer: bool = False) -> None:
        self.per_layer = per_layer
        self._lm: LoadedModel | None = None
        self._hooks: list[Any] = []
        self._lens: LogitLens | None = None
        self._state: Any = None
        self._release: Any = None
        self._active = False

    def install(self, model: LoadedModel) -> None:
        """Take the instrument's step counter; with ``per_layer``, hook every ``layers.{i}`` site."""
        if self._lm is not None:
            raise ProbeError("LensProbe is already installed; uninstall it first")
        inst = instrument_for(model)
        if self.per_layer:
            try:
                self._lens = inst.sites.lens()
            except SiteError as exc:
                raise ProbeError(
                    f"{model.spec.name}: per-layer logit lens needs the language model's final `norm` and the "
                    f"output embeddings (lm_head) ({exc})"
                ) from None
            for i in range(inst.num_layers):
                self._hooks.append(inst.sites.hook(f"layers.{i}", self._make_hook(i)))
        self._state = inst.state
        self._release = inst.acquire()
        self._lm = model

    def _make_hook(self, index: int):
        def hook(module: Any, args: Any, output: Any) -> None:
            if self._active and not self._state.bypass:
                self._hidden[index] = layer_output(output)[:, -1, :].detach()

        return hook

    def uninstall(self) -> None:
        """Remove the layer hooks and release the instrument."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._release is not None:
            self._release()
        self._release = None
        self._lm = None
        self._active = False

    def begin_batch(self, ctx: BatchContext) -> None:
        """Allocate the per-batch buffers (``max_new_tokens`` steps)."""
        if self._lm is None:
            raise ProbeError("LensProbe.begin_batch called before install()")
        device = self._lm.device
        B, S, L = ctx.batch_size, max(int(ctx.max_new_tokens), 1), self._lm.num_layers
        self._n_steps = S
        self._seen = 0
        self._steps = torch.zeros(S, 2, B, dtype=torch.float32, device=device)  # entropy, margin
        self._hidden: list[torch.Tensor | None] = [None] * L
        if self.per_layer:
            self._layers = torch.zeros(S, L, 2, B, dtype=torch.float32, device=device)  # kl, agree
        self._active = True

    def logits_processor(self) -> LogitsProcessor:
        """The observer transformers calls once per generated step (scores are not changed)."""
        return _LensProcessor(self)

    @torch.no_grad()
    def _observe(self, scores: torch.Tensor) -> None:
        step = self._state.step
        if not self._active or step < 0 or step >= self._n_steps:
            return
        self._seen = max(self._seen, step + 1)
        entropy, logp, p = _entropy_and_logp(scores)
        top2 = p.topk(2, dim=-1).values if p.shape[-1] > 1 else torch.cat([p, torch.zeros_like(p)], -1)
        self._steps[step] = torch.stack((entropy, top2[:, 0] - top2[:, 1]))
        if not self.per_layer or any(h is None for h in self._hidden):
            return
        assert self._lens is not None
        hidden = torch.stack(self._hidden)  # [L, B, H]
        lens = self._lens(hidden)  # [L, B, V], float32, soft-capped like the model
        # Tokens the processors removed (suppressed placeholders) are removed from the lens too;
        # otherwise their lens mass alone would make KL > 0 even at the last layer.
        lens = lens.masked_fill(torch.isneginf(scores)[None], float("-inf"))
        lens_logp = torch.log_softmax(lens, dim=-1)
        # KL(final || lens): only tokens the final distribution gives mass to contribute.
        diff = torch.where(p > 0, logp - lens_logp, torch.zeros_like(lens_logp))
        kl = (p * diff).sum(-1)  # [L, B]
        agree = (lens.argmax(-1) == scores.argmax(-1)).float()
        self._layers[step] = torch.stack((kl, agree), dim=1)
        self._hidden = [None] * len(self._hidden)

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Per row, the records of steps ``0 .. n - 1`` (see the class docstring for their keys)."""
        if not self._active:
            raise ProbeError("LensProbe.end_batch called without begin_batch()")
        self._active = False
        steps = self._steps.cpu().numpy()
        layers = self._layers.cpu().numpy() if self.per_layer else None
        out: list[list[dict[str, Any]]] = []
        for row, n_gen in enumerate(n_generated):
            n = min(int(n_gen), self._n_steps, self._seen)
            records: list[dict[str, Any]] = []
            for step in range(n):
                rec: dict[str, Any] = {
                    "step": step,
                    "entropy": float(steps[step, 0, row]),
                    "margin": float(steps[step, 1, row]),
                }
                if layers is None:
                    records.append(rec)
                    continue
                # One uniform record per (step, layer) so the frame joins the attention records
                # on (step, layer) without NaN-layer rows; step fields repeat on each layer.
                agree = layers[step, :, 1, row] > 0.5
                rec["lens_first_agree_layer"] = int(agree.argmax()) if agree.any() else -1
                for layer in range(layers.shape[1]):
                    records.append(
                        {
                            **rec,
                            "layer": layer,
                            "lens_kl": float(layers[step, layer, 0, row]),
                            "lens_top1_agree": bool(agree[layer]),
                        }
                    )
            out.append(records)
        return out


def make_probe(per_head: bool = False) -> LensProbe:
    """Registry factory (``--probes lens``): per-layer lens is opt-in and unrelated to --per-head."""
    return LensProbe()
