"""Teacher-forced replay of given outputs: prompt + output in one pass, chunked over queries.

:func:`teacher_force` encodes a batch exactly as :func:`pvm_bench.models.generation.generate`
does (same :func:`~pvm_bench.models.generation.encode`, left padding), appends each row's given
output tokens and runs the model over ``prompt + output[:-1]`` (the last output token is never
fed during decoding either): first the prompt (the prefill, step 0), then the output in chunks of
``chunk`` positions (fewer as the keys grow, see :func:`chunk_cuts`) through the KV cache, each
chunk one forward of many query rows. The
model's own ``prepare_inputs_for_generation`` / ``_update_model_kwargs_for_generation`` build
every chunk's inputs (cache, positions, M-RoPE deltas, attention mask) as ``generate`` does for
a multi-token step (transformers' assisted decoding uses the same path), so every family that
generates replays.

Step bookkeeping. The instrument's :class:`~pvm_bench.instrument.state.ForwardState` counts one
step per forward; here a forward covers many steps, so a language-model pre-hook (registered
after the state capture's) sets ``state.step`` to the step of the forward's FIRST query row.
Writers that act per forward (``blind:after=K``: image keys masked, PVM branch off from step K)
then see the right step as long as no chunk straddles K: ``boundaries`` lists such steps and
chunks are cut there, so each forward is wholly before or wholly from K on -- exactly the
decode-time behaviour of those rows.

Logits observers. A probe that watches each step's scores through a ``logits_processor()`` (the
``lens`` probe: entropy, margin) sees, per generated step ``t``, the logits of step ``t``'s row
after the same processors ``generate`` runs before it (transformers' own list built from the same
:func:`~pvm_bench.models.generation.generation_config`: suppressed tokens, repetition penalty on
the ids so far), called with ``prompt + output[:t]`` as ``input_ids`` and ``state.step = t``.
The model then returns the logits of every row of a chunk, so chunks are capped at
:data:`LOGIT_ROWS` rows (``[B, rows, vocab]`` is the largest tensor replay forms).

Right padding. Rows with shorter outputs are padded on the right (attention mask 1, as
``generate`` extends it); padded positions come after the row's last step and no recorded row
sees them.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from pvm_bench.instrument import instrument_for
from pvm_bench.models.generation import Generation, Request, encode, eos_ids, generation_config
from pvm_bench.models.observer import BatchContext, BatchObserver

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

DEFAULT_CHUNK = 512
"""Query positions per teacher-forced forward after the prompt."""
LOGIT_ROWS = 128
"""Chunk cap while a probe observes logits (the forward returns ``[B, rows, vocab]``)."""
SCORE_ELEMENTS = 1 << 22
"""Budget of ``batch x heads x rows x keys`` attention scores per forward (16 MiB in float32)."""
MIN_ROWS = 16
"""Fewest rows per forward however long the sequence (below that, forwards cost more than scores)."""


@dataclass
class Output:
    """A given output: its tokens (as the engine produced them, EOS included when it stopped there)."""

    text: str
    token_ids: list[int]
    finish_reason: str = "eos"


def chunk_cuts(prompt_len: int, n_fed: int, chunk: int, boundaries: Sequence[int] = (),
               score_rows: int | None = None) -> list[int]:
    """Absolute positions where the forwards after the prefill start, plus the end.

    Fed output tokens occupy positions ``[P, P + n_fed)``; position ``P - 1 + K`` is step ``K``'s row.
    A forward holds at most ``chunk`` rows and, with ``score_rows`` (a budget of ``rows x keys``),
    at most ``score_rows // keys`` (never fewer than :data:`MIN_ROWS`): the attention of a forward
    of ``rows`` queries over ``keys`` keys may form ``[heads, rows, keys]`` scores (sdpa's math path
    on CPU with a mask does), so this keeps replay's peak memory flat in the output length.
    """
    end = prompt_len + n_fed
    if n_fed <= 0:
        return []
    cuts, pos = [], prompt_len
    while pos < end:
        cuts.append(pos)
        rows = max(1, chunk)
        if score_rows is not None:
            rows = max(min(rows, MIN_ROWS), min(rows, score_rows // (pos + rows)))
        pos += rows
    starts = set(cuts) | {prompt_len - 1 + k for k in boundaries if k >= 1 and prompt_len <= prompt_len - 1 + k < end}
    return sorted(starts) + [end]


def generation_kwargs(hf: Any, ids: torch.Tensor, enc: Any) -> dict[str, Any]:
    """The model kwargs ``generate`` starts from (transformers 5 ``GenerationMixin.generate``).

    As there: position ids from ``_prepare_position_ids_for_generation`` (3-D M-RoPE ids and
    ``rope_deltas`` for the Qwen-VL families), then an all-ones attention mask dropped (no padding:
    the attention functions get no mask and run causal), ``use_cache`` on.
    """
    kwargs: dict[str, Any] = {k: v for k, v in enc.items() if k != "input_ids"}
    if "position_ids" in inspect.signature(hf.forward).parameters:
        kwargs["position_ids"] = hf._prepare_position_ids_for_generation(ids, {"input_ids": ids, **kwargs})
    mask = kwargs.get("attention_mask")
    if mask is not None and bool((mask == 1).all()):
        kwargs["attention_mask"] = None
    kwargs["use_cache"] = True
    return kwargs


def _forward(hf: Any, inputs: dict[str, Any], rows: int = 1) -> Any:
    """One forward keeping the last ``rows`` positions' logits (the prompt's [L, vocab] is never formed)."""
    return hf(**inputs, return_dict=True, logits_to_keep=rows)


def step_processors(lm: LoadedModel, ids: torch.Tensor, kwargs: dict[str, Any], observers: list[Any],
                    repetition_penalty: float | None) -> Any:
    """transformers' logits processors for :func:`generation_config`, then the probes' observers.

    Built by the model's own ``_prepare_generation_config`` / ``_get_logits_processor`` as in
    ``generate`` (checkpoint defaults filled in, default processors first, custom ones after).
    """
    from transformers import LogitsProcessorList

    hf: Any = lm.hf_model
    config, _ = hf._prepare_generation_config(generation_config(lm, 1, repetition_penalty))
    hf._prepare_special_tokens(config, kwargs.get("attention_mask") is not None, device=ids.device)
    return hf._get_logits_processor(generation_config=config, input_ids_seq_length=ids.shape[1], encoder_input_ids=ids,
                                    logits_processor=LogitsProcessorList(observers), device=ids.device,
                                    model_kwargs=kwargs)


@torch.inference_mode()
def teacher_force(
    lm: LoadedModel,
    requests: list[Request],
    outputs: list[Output],
    *,
    probes: Sequence[BatchObserver] = (),
    system_prompt: str | None = None,
    boundaries: Sequence[int] = (),
    chunk: int = DEFAULT_CHUNK,
    repetition_penalty: float | None = None,
) -> list[Generation]:
    """Replay ``outputs`` (one per request) through ``lm``; the probes record every generated step.

    Returns one :class:`Generation` per request carrying the GIVEN text and tokens (nothing is
    generated), ``n_generated = len(token_ids)``, and the probes' records; ``prefill_s`` is the
    wall time of the whole replay of the batch, ``decode_s`` 0.
    """
    if not requests:
        return []
    enc, prompts = encode(lm, requests, system_prompt)
    ids = enc["input_ids"]
    B, P = ids.shape
    lengths = [len(o.token_ids) for o in outputs]
    steps = max(max(lengths), 1)
    ctx = BatchContext(input_ids=ids, attention_mask=enc["attention_mask"], image_mask=ids == lm.image_token_id,
                       max_new_tokens=steps)
    for probe in probes:
        probe.begin_batch(ctx)
    eos = eos_ids(lm)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    fed = torch.full((B, steps - 1), int(pad), dtype=ids.dtype, device=ids.device)
    for row, out in enumerate(outputs):
        tokens = out.token_ids[: max(len(out.token_ids) - 1, 0)]
        if tokens:
            fed[row, : len(tokens)] = torch.tensor(tokens, dtype=ids.dtype, device=ids.device)
    full = torch.cat((ids, fed), dim=1)
    hf: Any = lm.hf_model
    inst = instrument_for(lm)
    release = inst.acquire()
    current = {"step": 0}

    def set_step(module: Any, args: tuple, kwargs: dict) -> None:
        if not inst.state.bypass:
            inst.state.step = current["step"]

    handle = inst.sites.language_model.register_forward_pre_hook(set_step, with_kwargs=True)
    observers = [p for p in (probe.logits_processor() for probe in probes) if p is not None]
    start = time.perf_counter()
    try:
        kwargs = generation_kwargs(hf, ids, enc)
        processors = step_processors(lm, ids, kwargs, observers, repetition_penalty) if observers else None

        def observe(out: Any, first_step: int, rows: int) -> None:
            """Hand steps ``first_step ..`` (the call's last ``rows`` rows) to the processors."""
            for r in range(rows):
                step = first_step + r
                if processors is None or not 0 <= step < steps:
                    continue
                inst.state.step = step
                processors(full[:, : P + step], out.logits[:, r - rows].to(torch.float32))

        out = _forward(hf, hf.prepare_inputs_for_generation(ids, is_first_iteration=True, **kwargs))
        observe(out, 0, 1)
        heads = int(getattr(lm.text_config, "num_attention_heads", 1) or 1)
        cuts = chunk_cuts(P, steps - 1, min(chunk, LOGIT_ROWS) if observers else chunk, boundaries,
                          score_rows=SCORE_ELEMENTS // (B * heads))
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            current["step"] = lo - (P - 1)
            kwargs = hf._update_model_kwargs_for_generation(out, kwargs, num_new_tokens=hi - lo)
            rows = hi - lo if observers else 1
            out = _forward(hf, hf.prepare_inputs_for_generation(full[:, :hi], next_sequence_length=hi - lo, **kwargs),
                           rows)
            observe(out, current["step"], rows)
    finally:
        handle.remove()
        release()
    elapsed = time.perf_counter() - start
    results = [
        Generation(key=req.key, prompt=prompt, text=o.text, token_ids=list(o.token_ids), n_generated=len(o.token_ids),
                   finish_reason=o.finish_reason, prefill_s=elapsed, decode_s=0.0, batch_size=B)
        for req, prompt, o in zip(requests, prompts, outputs)
    ]
    for probe in probes:
        for result, records in zip(results, probe.end_batch(lengths)):
            result.probe_records[probe.name] = records
    return results
