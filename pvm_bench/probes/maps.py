"""Spatial maps: per generated step, where on the image's patch grid the model looks (``--maps``).

A reader of the attention site (:mod:`pvm_bench.instrument.attention`), like the attention probe:
per decoder layer of the band and per step it takes the softmax of the last query row
(:func:`pvm_bench.probes.lastrow.last_row_probs`, the same computation as the visual mass), averages
it over heads and the band's layers and keeps the values on the image keys, one per image token.
So, per step, the map sums to the band's mean ``visual_mass`` (within float rounding).

Only the rows the ``wanted(key)`` predicate selects are computed (the runner selects the samples
``--maps`` names, :func:`pvm_bench.runner.maps.chosen_keys`); a batch without one costs one Python
check per attention call. Memory: one ``[steps, rows, image tokens]`` float32 buffer per batch on
the model's device, with steps capped at ``max_steps`` (later steps are not recorded).

The probe adds no rows to attention.parquet (its records are empty); after each batch
:attr:`MapsProbe.collected` holds one :class:`~pvm_bench.runner.maps.SampleMaps` per selected row
(None for the others), with the image layout from the family's grid rule
(:mod:`pvm_bench.models.grids`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.instrument import AttentionSiteError, instrument_for
from pvm_bench.models.grids import GridInputs, image_views
from pvm_bench.probes.attention import find_attention_modules
from pvm_bench.probes.base import AttentionSiteProbe, BatchContext, ProbeError
from pvm_bench.probes.images import closing_marker_id, image_index
from pvm_bench.probes.lastrow import last_row_probs, row_mask
from pvm_bench.runner.maps import DEFAULT_MAX_STEPS, SampleMaps

if TYPE_CHECKING:
    from pvm_bench.instrument.state import ForwardState
    from pvm_bench.models.loading import LoadedModel


class MapsProbe(AttentionSiteProbe):
    """Head- and layer-band-averaged attention on each image token, per generated step.

    Args:
        wanted: ``wanted(request key) -> bool`` selects the rows to map (None: every row).
        layers: the layer band (decoder layer indices; None: all layers).
        max_steps: steps recorded per row (the first ones).
    """

    name = "maps"

    def __init__(self, wanted: Callable[[Any], bool] | None = None, layers: Sequence[int] | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.wanted = wanted
        self.layers = None if layers is None else sorted({int(x) for x in layers})
        self.max_steps = int(max_steps)
        self.collected: list[SampleMaps | None] = []
        self._lm: LoadedModel | None = None
        self._band: set[int] = set()
        self._active = False
        self._detach: Any = None
        self._release: Any = None

    def install(self, model: LoadedModel) -> None:
        """Subscribe to the model's attention site as a reader.

        Raises:
            ProbeError: the family's attention cannot be routed through the site, or a band layer
                does not exist.
        """
        if self._lm is not None:
            raise ProbeError("MapsProbe is already installed; uninstall it first")
        n_layers = len(find_attention_modules(model))
        band = list(range(n_layers)) if self.layers is None else self.layers
        bad = [x for x in band if not 0 <= x < n_layers]
        if bad or not band:
            raise ProbeError(f"maps layer band {band} is outside the model's {n_layers} decoder layers")
        inst = instrument_for(model)
        release = inst.acquire()
        try:
            self._detach = inst.attention.subscribe(self, read=True)
        except AttentionSiteError as exc:
            release()  # the maps are on by default (--maps 2): say which option asked for the site
            raise ProbeError(f"--maps: {exc}; pass --maps 0 to run without spatial maps") from None
        self._release, self._lm, self._band = release, model, set(band)

    def begin_batch(self, ctx: BatchContext) -> None:
        """Pick the rows to map, lay their images out, allocate ``[steps, rows, tokens]``."""
        if self._lm is None:
            raise ProbeError("MapsProbe.begin_batch called before install()")
        B = ctx.batch_size
        keys = ctx.keys if ctx.keys is not None else [None] * B
        self._rows = [i for i, k in enumerate(keys) if self.wanted is None or self.wanted(k)]
        self.collected = [None] * B
        self._active = bool(self._rows)
        if not self._active:
            return
        lm = self._lm
        index = image_index(ctx.input_ids, ctx.image_mask, closing_marker_id(getattr(lm, "tokenizer", None)))
        gi = GridInputs(lm.processor, lm.hf_model.config, ctx.inputs)
        batch_image = 0  # processor outputs (image_grid_thw, ...) list the batch's images in row order
        self._layout: dict[int, list[dict[str, Any]]] = {}
        positions: list[torch.Tensor] = []
        for row in range(B):
            idx = index[row]
            pos = (idx >= 0).nonzero().flatten()
            images, offset = [], 0
            for m in range(int(idx.max()) + 1 if idx.numel() else 0):
                n = int((idx == m).sum())
                views = image_views(lm.spec.image_grid, n, batch_image, gi)
                images.append({"index": m, "start": offset, "n_tokens": n, "views": [v.to_dict() for v in views]})
                offset += n
                batch_image += 1
            if row in self._rows:
                self._layout[row] = images
                positions.append(pos)
        width = max(max((len(p) for p in positions), default=0), 1)
        device = lm.device
        pos = torch.zeros(len(positions), width, dtype=torch.long)
        valid = torch.zeros(len(positions), width, dtype=torch.bool)
        for r, p in enumerate(positions):
            pos[r, : len(p)], valid[r, : len(p)] = p, True
        self._pos, self._valid = pos.to(device), valid.to(device)
        self._sel = torch.tensor(self._rows, dtype=torch.long, device=device)
        self._all = len(self._rows) == B
        self._steps = max(min(int(ctx.max_new_tokens), self.max_steps), 1)
        self._weight = 1.0 / len(self._band)
        self._buf = torch.zeros(self._steps, len(self._rows), width, dtype=torch.float32, device=device)

    def _pick(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """The selected rows of a per-row tensor (a broadcast batch dimension of 1 is kept)."""
        if t is None or self._all or t.shape[0] == 1:
            return t
        return t.index_select(0, self._sel.to(t.device))

    def observe_attention(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
                          scaling: float | None, softcap: float | None, position_bias: torch.Tensor | None,
                          state: ForwardState) -> None:
        """Add this layer's head-mean last-row attention on the image keys to the step's map."""
        step = state.step
        if not self._active or layer not in self._band or not 0 <= step < self._steps:
            return
        n = key.shape[2]
        q = self._pick(query[:, :, -1:, :])
        k = self._pick(key)
        bias = self._pick(position_bias[:, :, -1:, :]) if position_bias is not None else None
        m = self._pick(mask[:, :, -1:, :]) if mask is not None else None
        assert q is not None and k is not None
        additive, _ = row_mask(m, k.shape[1], q.shape[0], n, k.device)
        probs = last_row_probs(q, k, additive, scaling, softcap, bias).mean(dim=1)  # [rows, n]
        # Keys are the last n absolute positions; image keys outside them (sliding window) get 0.
        cols = self._pos.to(probs.device) - (state.total - n)
        ok = self._valid.to(probs.device) & (cols >= 0)
        picked = probs.gather(1, cols.clamp(0, n - 1)) * ok
        self._buf[step].add_(picked.to(self._buf.device), alpha=self._weight)

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """No attention.parquet rows; fills :attr:`collected` for the selected rows."""
        if self._active:
            self._active = False
            buf = self._buf.cpu().numpy()  # one transfer per batch
            band = sorted(self._band)
            for r, row in enumerate(self._rows):
                steps = min(int(n_generated[row]), self._steps)
                width = int(self._valid[r].sum())
                att = buf[:steps, r, :width]
                self.collected[row] = SampleMaps(
                    attention=att, visual_mass=att.sum(-1, dtype="float64").astype("float32"), layers=band,
                    images=self._layout[row], n_generated=int(n_generated[row]), max_steps=self.max_steps,
                )
            del self._buf, self._pos, self._valid
        return [[] for _ in n_generated]


def make_probe(per_head: bool = False) -> MapsProbe:
    """Registry factory (``--probes maps``: every row, all layers; ``--maps`` selects samples instead)."""
    return MapsProbe()
