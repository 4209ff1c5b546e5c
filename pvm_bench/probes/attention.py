"""Streaming visual-attention probe: softmax mass on image keys at every step and decoder layer.

How it works. The probe is a *reader* of the attention site of
:mod:`pvm_bench.instrument.attention`: one function registered with transformers'
``AttentionInterface`` (and the stock ``sdpa_mask`` with ``AttentionMaskInterface``) computes
each decoder self-attention output exactly as ``sdpa_attention_forward`` does (so generated
tokens are identical to plain sdpa) and hands the call's query and keys to the probe, which
computes the softmax of the LAST query row only (``[B, heads, 1, keys]``, GQA by folding the
query heads onto their key/value head instead of repeating K). Only the *text* sub-config is
switched, so the vision tower keeps its backend. Nothing ``[q, keys]``-shaped is ever
materialised; per-step results go into small preallocated tensors on the model's device and
are turned into records once per batch (no host sync per step).

Step convention (see :mod:`pvm_bench.probes.base`): step 0 is the prefill forward (the query at
the last prompt position), step t >= 1 is the decode forward that feeds generated token t. The
step and the sequence length come from the instrument's
:class:`~pvm_bench.instrument.state.ForwardState` (counted once per forward for every consumer).

Key positions. Keys of a call cover absolute positions ``[total - n, total)`` where ``total`` is
the sequence length so far and ``n`` the number of keys passed (sliding-window caches keep only
the most recent keys). Image keys are the prompt positions flagged in ``BatchContext.image_mask``;
keys beyond the prompt are generated text. ``n_keys``/``n_visual`` count the keys the mask lets
the last query see (left padding and out-of-window keys excluded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pvm_bench.instrument import AttentionSiteError, instrument_for
from pvm_bench.instrument.attention import ATTN_NAME, text_subconfig_key  # noqa: F401 (public names)
from pvm_bench.probes.base import AttentionSiteProbe, BatchContext, ProbeError
from pvm_bench.probes.lastrow import last_row_probs, row_mask

if TYPE_CHECKING:
    from pvm_bench.instrument.state import ForwardState
    from pvm_bench.models.loading import LoadedModel

RECORD_KEYS = ("step", "layer", "visual_mass", "visual_mass_norm", "sink_mass", "n_keys", "n_visual")
"""Keys of every attention record (plus ``visual_mass_heads`` when ``per_head`` is set)."""


def find_attention_modules(lm: LoadedModel) -> list[nn.Module]:
    """The self-attention module of every decoder layer of the language model, in layer order.

    The submodule name comes from the family table (``self_attn`` in every transformers VLM
    family we know); a layer without one raises :class:`ProbeError` (we do not guess among
    submodules, since a PVM branch adds a cross-attention to some layers).
    """
    name = getattr(lm.spec, "attention_module", "self_attn")
    modules = []
    for i, layer in enumerate(lm.layers):
        attn = getattr(layer, name, None)
        if not isinstance(attn, nn.Module):
            raise ProbeError(
                f"{lm.spec.name}: decoder layer {i} ({type(layer).__name__}) has no `{name}` module; "
                "the attention probe only supports softmax self-attention layers"
            )
        modules.append(attn)
    return modules


class AttentionProbe(AttentionSiteProbe):
    """Per step and decoder layer: head-averaged softmax mass of the current query on image keys.

    Args:
        per_head: also record ``visual_mass_heads`` (a list of per-head masses) per record.
        sink_threshold: a key is a sink when it takes more than this share of a head's mass in
            more than half of the heads; the first non-padding key is always a sink.

    Records (one per row, step and layer), see :data:`RECORD_KEYS`:
        ``visual_mass``: mean over heads of the summed probability on image keys;
        ``visual_mass_norm``: ``visual_mass / (n_visual / n_keys)`` (1.0 = uniform; NaN when the
        query sees no image key); ``sink_mass``: head-averaged mass on the sink keys, each key
        counted once (reported apart: it overlaps ``visual_mass`` when a sink is an image key);
        ``n_keys``/``n_visual``: keys/image keys visible to the query;
        with ``per_image``: ``visual_mass_img{i}`` = the same mass on image i's keys only (images
        in prompt order, :func:`pvm_bench.probes.images.image_index`; a row has one column per
        image it holds, NaN in attention.parquet for images it does not have).
    """

    name = "attention"

    def __init__(self, per_head: bool = False, sink_threshold: float = 0.5, per_image: bool = False) -> None:
        self.per_head = per_head
        self.per_image = per_image
        self.sink_threshold = float(sink_threshold)
        self._lm: LoadedModel | None = None
        self._n_layers = 0
        self._active = False
        self._calls = 0
        self._detach: Any = None
        self._release: Any = None

    # -- install -----------------------------------------------------------------------------

    def install(self, model: LoadedModel) -> None:
        """Subscribe to the model's attention site (switches the text decoder's backend).

        Raises:
            ProbeError: the family's decoder layers have no self-attention module, its attention
                does not dispatch through transformers' ``AttentionInterface``, or another
                attention probe is already installed on the model.
        """
        if self._lm is not None:
            raise ProbeError("AttentionProbe is already installed; uninstall it first")
        modules = find_attention_modules(model)
        inst = instrument_for(model)
        site = inst.attention
        if any(isinstance(r, AttentionProbe) for r in site.readers):
            raise ProbeError("decoder layers are already probed by another AttentionProbe")
        release = inst.acquire()
        try:
            self._detach = site.subscribe(self, read=True)
        except AttentionSiteError as exc:
            release()
            raise ProbeError(str(exc)) from None
        self._release = release
        self._lm = model
        self._n_layers = len(modules)

    # -- per batch ---------------------------------------------------------------------------

    def begin_batch(self, ctx: BatchContext) -> None:
        """Allocate the per-batch result buffers (size ``max_new_tokens x layers x B``)."""
        if self._lm is None:
            raise ProbeError("AttentionProbe.begin_batch called before install()")
        device = self._lm.device
        B, P = ctx.input_ids.shape
        S, L = max(int(ctx.max_new_tokens), 1), self._n_layers
        # Image flags over every absolute position the batch can reach; generated keys are text.
        img = torch.zeros(B, P + S, dtype=torch.float32, device=device)
        img[:, :P] = ctx.image_mask.to(device=device, dtype=torch.float32)
        self._img = img
        self._prompt_len = P
        self._img_onehot: torch.Tensor | None = None  # [B, P + S, M] per-image key flags (--per-image)
        self._n_images: list[int] = []
        if self.per_image:
            from pvm_bench.probes.images import closing_marker_id, image_index, n_images

            idx = image_index(ctx.input_ids, ctx.image_mask, closing_marker_id(getattr(self._lm, "tokenizer", None)))
            self._n_images = n_images(idx)
            M = max(max(self._n_images, default=0), 1)
            onehot = torch.zeros(B, P + S, M, dtype=torch.float32)
            rows, cols = (idx >= 0).nonzero(as_tuple=True)
            onehot[rows, cols, idx[rows, cols]] = 1.0
            self._img_onehot = onehot.to(device)
            self._ibuf = torch.zeros(S, L, M, B, dtype=torch.float32, device=device)
        # [S, L, 4, B]: visual_mass, sink_mass, n_keys, n_visual (counts are exact in float32).
        self._buf = torch.zeros(S, L, 4, B, dtype=torch.float32, device=device)
        self._heads: torch.Tensor | None = None
        self._n_steps = S
        self._calls = 0
        self._cache_step = -1
        self._mask_cache: dict[tuple[int, int, torch.device], Any] = {}
        self._active = True

    def _key_view(
        self, mask: torch.Tensor | None, n: int, total: int, device: torch.device
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the last query row may see, cached per (mask tensor, key count) within a step.

        Returns ``(additive mask [B * H_kv, 1, n] or None, image flags [B, n], first-visible-key
        one-hot [B, n] bool, counts [2, B] = (n_keys, n_visual), weights [B, n,
        2])`` on ``device`` (the layer's: layers may
        sit on different GPUs under a device map). transformers builds one mask per layer type per forward and passes
        the same tensor to every layer of that type, so this runs once or twice per step.
        """
        cache_key = (id(mask), n, device)
        hit = self._mask_cache.get(cache_key)
        if hit is not None and hit[0] is mask:
            return hit[1]
        B = self._img.shape[0]
        h_kv = self._h_kv
        # Keys are the last n absolute positions (a sliding-window cache keeps only recent ones).
        img = self._img[:, total - n : total].to(device)
        additive, allowed = row_mask(mask, h_kv, B, n, img.device)
        allowed_f = allowed.float()
        first = torch.zeros_like(allowed).scatter_(1, allowed_f.argmax(-1, keepdim=True), True)
        counts = torch.stack((allowed_f.sum(-1), (allowed_f * img).sum(-1)))  # n_keys, n_visual
        # Key weights for the final product: column 0 image flags, column 1 this layer's sinks.
        weights = torch.stack((img, torch.zeros_like(img)), dim=-1)  # [B, n, 2]
        if self._img_onehot is not None:  # columns 2..: one per image (--per-image)
            weights = torch.cat((weights, self._img_onehot[:, total - n : total].to(device)), dim=-1)
        value = (additive, img, first, counts, weights)
        self._mask_cache[cache_key] = (mask, value)
        return value

    def observe_attention(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float | None,
        softcap: float | None,
        position_bias: torch.Tensor | None,
        state: ForwardState,
    ) -> None:
        """Softmax of the last query row of one attention call; writes into the step's buffer.

        Per call this is one ``[B * H_kv, g, D] x [B * H_kv, D, n]`` product, one softmax over
        ``[B, H, n]`` and a handful of reductions (about a dozen small ops); no host sync.
        """
        if not self._active:
            return
        n = key.shape[2]
        step = state.step
        if step != self._cache_step:  # masks are built once per forward and shared by the layers
            self._cache_step = step
            self._mask_cache = {}
        if step < 0 or step >= self._n_steps:
            return
        self._calls += 1
        B, H = query.shape[:2]
        self._h_kv = key.shape[1]
        additive, img, first, counts, weights = self._key_view(mask, n, state.total, key.device)
        probs = last_row_probs(query, key, additive, scaling, softcap, position_bias)  # [B, H, n]
        # A key is a sink when it holds > threshold of the mass in most heads; the first visible
        # key always is. Boolean OR: a key is counted once even when both hold.
        weights[..., 1] = torch.logical_or((probs > self.sink_threshold).sum(1) > H / 2, first)
        mass = torch.matmul(probs.mean(dim=1, keepdim=True), weights)  # [B, 1, 2]: visual, sink
        self._buf[step, layer, :2] = mass[:, 0, :2].T
        if self._img_onehot is not None:
            self._ibuf[step, layer] = mass[:, 0, 2:].T
        self._buf[step, layer, 2:] = counts
        if self.per_head:
            if self._heads is None:
                self._heads = torch.zeros(self._n_steps, self._n_layers, B, H, device=probs.device)
            self._heads[step, layer] = torch.matmul(probs, img.unsqueeze(-1)).squeeze(-1)

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Records for steps ``0 .. n_generated[row] - 1`` of every row (see the class docstring).

        Raises:
            ProbeError: generation ran but no probed attention call was seen (the family does
                not route its decoder attention through the registered function).
        """
        if not self._active:
            raise ProbeError("AttentionProbe.end_batch called without begin_batch()")
        self._active = False
        if self._calls == 0 and any(n > 0 for n in n_generated):
            name = self._lm.spec.name if self._lm is not None else "model"
            raise ProbeError(
                f"{name}: no decoder self-attention call reached the streaming attention function; "
                "this family's attention does not dispatch through transformers' AttentionInterface"
            )
        buf = self._buf.cpu().numpy()  # one transfer per batch
        heads = self._heads.cpu().numpy() if self._heads is not None else None
        per_image = self._ibuf.cpu().numpy() if self._img_onehot is not None else None
        n_layers = buf.shape[1]
        out: list[list[dict[str, Any]]] = []
        for row, n_gen in enumerate(n_generated):
            n = min(int(n_gen), self._n_steps)
            # Column-wise with numpy, then one dict per (step, layer): the loop only zips.
            cols = buf[:n, :, :, row].reshape(n * n_layers, 4).astype(np.float64)
            visual, sink, n_keys, n_visual = cols.T
            with np.errstate(divide="ignore", invalid="ignore"):
                norm = np.where(n_visual > 0, visual * n_keys / np.where(n_visual > 0, n_visual, 1), np.nan)
            steps = np.repeat(np.arange(n), n_layers).tolist()
            layers = np.tile(np.arange(n_layers), n).tolist()
            per_head = heads[:n, :, row].reshape(n * n_layers, -1).tolist() if heads is not None else None
            records = [
                {
                    "step": st,
                    "layer": la,
                    "visual_mass": vm,
                    "visual_mass_norm": vn,
                    "sink_mass": sm,
                    "n_keys": int(nk),
                    "n_visual": int(nv),
                }
                for st, la, vm, vn, sm, nk, nv in zip(
                    steps, layers, visual.tolist(), norm.tolist(), sink.tolist(), n_keys.tolist(), n_visual.tolist()
                )
            ]
            if per_head is not None:
                for rec, values in zip(records, per_head):
                    rec["visual_mass_heads"] = values
            if per_image is not None:  # visual_mass_img{i}: mass on image i's keys (prompt order)
                img_cols = per_image[:n, :, : self._n_images[row], row].reshape(n * n_layers, -1).astype(np.float64)
                for i in range(img_cols.shape[1]):
                    for rec, value in zip(records, img_cols[:, i].tolist()):
                        rec[f"visual_mass_img{i}"] = value
            out.append(records)
        del self._buf, self._img
        self._heads = None
        self._img_onehot = None
        return out



def make_probe(per_head: bool = False) -> AttentionProbe:
    """Registry factory (``--probes attention``; ``--per-head`` keeps per-head masses)."""
    return AttentionProbe(per_head=per_head)
