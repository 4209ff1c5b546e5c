"""Batched generation with left padding, per-sample seeds and probes.

Sampling is done by :class:`RowSampler`, a logits processor that draws each row's token
from that row's own ``torch.Generator`` (seeded per sample and repeat) and hands transformers
a one-hot score, so transformers runs its greedy loop. Results therefore do not depend on
batch size or order, only on each request's seed.

Which decoding settings apply is decided once by :func:`effective_decoding` (see
:mod:`pvm_bench.models.decoding`): the user's values, else the task's (lmms-eval YAML
``generation_kwargs``), else the checkpoint's ``generation_config``, else transformers' defaults.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from pvm_bench.models.decoding import effective_decoding
from pvm_bench.models.observer import BatchContext, BatchObserver

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


@dataclass
class Request:
    """One generation: chat ``messages`` whose image parts refer to ``images`` (see Task.messages)."""

    messages: list[dict[str, Any]]
    images: list[Image.Image] = field(default_factory=list)
    seed: int = 0
    key: Any = None


@dataclass
class Generation:
    """The result of one request."""

    key: Any
    prompt: str
    text: str
    token_ids: list[int]
    n_generated: int
    finish_reason: str  # "eos" | "length"
    prefill_s: float
    decode_s: float
    batch_size: int
    probe_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def tokens_per_s(self) -> float:
        total = self.prefill_s + self.decode_s
        return self.n_generated / total if total > 0 else 0.0


class RowSampler(LogitsProcessor):
    """Temperature / top-k / top-p sampling with one RNG per row; returns one-hot scores.

    The filters run in transformers' order (``GenerationMixin._get_logits_processor``:
    temperature, then top-k, then top-p, each on the previous one's output) with the same
    tie and boundary rules as ``TopKLogitsWarper`` (keep every logit >= the k-th largest) and
    ``TopPLogitsWarper`` (ascending sort; drop the tail holding <= 1 - top_p of the mass), so a
    row's distribution is the one ``generate(do_sample=True, ...)`` samples from. Penalties
    (repetition_penalty) are applied before, by transformers' own processor.
    """

    def __init__(
        self, seeds: list[int], temperature: float, top_p: float | None = None, top_k: int | None = None
    ) -> None:
        from pvm_bench.config import MIN_TEMPERATURE

        if temperature < MIN_TEMPERATURE:  # logits / 1e-320 is inf: the probabilities would be NaN
            raise ValueError(f"RowSampler needs temperature >= {MIN_TEMPERATURE:g} (0 is greedy), got {temperature}")
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = 1.0 if top_p is None else float(top_p)
        self.top_k = int(top_k) if top_k else 0

    def distribution(self, scores: torch.Tensor) -> torch.Tensor:
        """The (rows, vocab) probabilities each row samples from (float32, on the CPU)."""
        logits = scores.float().cpu() / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            # As TopPLogitsWarper: ascending sort, drop the tail whose mass is <= 1 - top_p, keep >= 1.
            sorted_logits, order = torch.sort(logits, descending=False)
            drop = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - self.top_p)
            drop[..., -1] = False
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        return torch.softmax(logits, dim=-1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = self.distribution(scores)
        out = torch.full_like(scores, float("-inf"))
        for row, gen in enumerate(self.generators):
            token = torch.multinomial(probs[row], 1, generator=gen)
            out[row, token.to(out.device)] = 0.0
        return out


class StepClock(LogitsProcessor):
    """Records when each step's scores arrive (the first marks the end of prefill)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.times.append(time.perf_counter())
        return scores


def ordered_images(request: Request) -> list[Image.Image]:
    """The request's images in the order their parts appear in the messages."""
    out: list[Image.Image] = []
    running = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            continue
        for part in content:
            if part.get("type") == "image":
                out.append(request.images[part.get("index", running)])
                running += 1
    return out


def strip_image_indices(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat templates only need ``{"type": "image"}``; drop our ``index`` bookkeeping."""
    clean = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            content = [{k: v for k, v in part.items() if k != "index"} for part in content]
        clean.append({**message, "content": content})
    return clean


def with_system_prompt(messages: list[dict[str, Any]], system_prompt: str | None) -> list[dict[str, Any]]:
    """``messages`` with a leading system turn (unless they already have one or there is no prompt).

    lmms-eval 0.7.3's ``qwen3_vl`` model always sends ``"You are a helpful assistant."`` as a
    system turn (``models/simple/qwen3_vl.py`` line 91 default, line 305), which Qwen3-VL's chat
    template does not add by itself.
    """
    if not system_prompt or (messages and messages[0].get("role") == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


class SampleInputError(ValueError):
    """Some requests of a batch cannot be turned into model inputs (the processor refused them, e.g.
    an image of aspect ratio over 200 for Qwen-VL): ``failures`` maps their index in the batch to a
    one-line reason. The other requests are fine and can be generated without them."""

    def __init__(self, failures: dict[int, str]) -> None:
        self.failures = failures
        super().__init__("; ".join(f"request {i}: {m}" for i, m in failures.items()))


def encode(lm: LoadedModel, requests: list[Request], system_prompt: str | None = None) -> tuple[Any, list[str]]:
    """Tokenize a batch with left padding; returns the processor output and the prompt texts.

    When the processor refuses the batch, each request is encoded alone to find the ones it
    refuses: :class:`SampleInputError` names them, so one bad sample does not fail its batch.
    """
    try:
        return _encode(lm, requests, system_prompt)
    except Exception as exc:  # noqa: BLE001 -- processors raise anything for inputs they cannot take
        from pvm_bench.runner.guard import is_out_of_memory

        if is_out_of_memory(exc):  # the batch's size, not one sample's input
            raise
        if len(requests) == 1:
            raise SampleInputError({0: _reason(exc)}) from exc
        failures: dict[int, str] = {}
        for i, request in enumerate(requests):
            try:
                _encode(lm, [request], system_prompt)
            except Exception as alone:  # noqa: BLE001
                failures[i] = _reason(alone)
        if not failures:
            raise
        raise SampleInputError(failures) from exc


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"the processor cannot take this input ({type(exc).__name__}: {text[:300]})"


def _encode(lm: LoadedModel, requests: list[Request], system_prompt: str | None) -> tuple[Any, list[str]]:
    processor = lm.processor
    texts = [
        processor.apply_chat_template(
            strip_image_indices(with_system_prompt(r.messages, system_prompt)),
            add_generation_prompt=True,
            tokenize=False,
        )
        for r in requests
    ]
    # One list per sample: processors that split or count images per prompt (Idefics3,
    # SmolVLM, Gemma3, LLaVA-OneVision) need the nesting; the others accept it too.
    images = [ordered_images(r) for r in requests]
    enc = processor(
        text=texts, images=images if any(images) else None, return_tensors="pt", padding=True,
        padding_side="left",
    )
    return enc.to(lm.device), texts


def eos_ids(lm: LoadedModel) -> list[int]:
    ids = lm.hf_model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    tok_eos = lm.tokenizer.eos_token_id
    if tok_eos is not None and tok_eos not in ids:
        ids.append(tok_eos)
    return ids


def generation_config(lm: LoadedModel, max_new_tokens: int, repetition_penalty: float | None) -> GenerationConfig:
    """The ``GenerationConfig`` :func:`generate` passes to transformers (greedy; sampling is a processor).

    Also what replay (:mod:`pvm_bench.replay.forward`) rebuilds the logits processors from, so the
    scores its probes observe are the ones they observe while generating.
    """
    eos = eos_ids(lm)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos or None,
        pad_token_id=pad,
        suppress_tokens=lm.suppress_token_ids() or None,
        # Set explicitly: transformers would otherwise fill it from the checkpoint (same value).
        # Its processor skips each row's left padding, so batch composition does not matter.
        repetition_penalty=repetition_penalty,
    )


@torch.inference_mode()
def generate(
    lm: LoadedModel,
    requests: list[Request],
    *,
    max_new_tokens: int = 256,
    temperature: float | None = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    repetition_penalty: float | None = None,
    task_settings: Mapping[str, Any] | None = None,
    system_prompt: str | None = None,
    probes: Sequence[BatchObserver] = (),
) -> list[Generation]:
    """Generate for all ``requests`` as one batch.

    ``temperature == 0`` (or ``None``) is greedy decoding. ``top_p``/``top_k``/
    ``repetition_penalty`` left ``None`` come from ``task_settings`` (a task's ``generation``
    dict), then the checkpoint's ``generation_config``, then transformers' defaults; see
    :func:`effective_decoding` for what applies under greedy decoding. Generation stops per row
    at an EOS id (from the model's generation config and tokenizer) or after ``max_new_tokens``
    (``finish_reason`` ``"length"``: the output is truncated). ``system_prompt`` adds a system
    turn to every request (see :func:`with_system_prompt`; ``None``: none).
    """
    if not requests:
        return []
    decoding = effective_decoding(lm, temperature, top_p, top_k, repetition_penalty, task=task_settings)
    enc, prompts = encode(lm, requests, system_prompt)
    input_ids = enc["input_ids"]
    ctx = BatchContext(
        input_ids=input_ids,
        attention_mask=enc["attention_mask"],
        image_mask=input_ids == lm.image_token_id,
        max_new_tokens=max_new_tokens,
        inputs=enc,
        keys=[r.key for r in requests],
    )
    clock = StepClock()
    processors = LogitsProcessorList()
    for probe in probes:
        probe.begin_batch(ctx)
        extra = probe.logits_processor()
        if extra is not None:
            processors.append(extra)
    processors.append(clock)
    if decoding["do_sample"]:
        processors.append(
            RowSampler([r.seed for r in requests], decoding["temperature"], decoding["top_p"], decoding["top_k"])
        )
    eos = eos_ids(lm)
    gen_config = generation_config(lm, max_new_tokens, decoding["repetition_penalty"])
    start = time.perf_counter()
    sequences = lm.hf_model.generate(**enc, generation_config=gen_config, logits_processor=processors)
    end = time.perf_counter()
    generated = sequences[:, input_ids.shape[1] :].tolist()

    first = clock.times[0] if clock.times else end
    results: list[Generation] = []
    n_generated: list[int] = []
    for req, prompt, row in zip(requests, prompts, generated):
        stop = next((i for i, tok in enumerate(row) if tok in eos), None)
        n = len(row) if stop is None else stop + 1
        n_generated.append(n)
        text_ids = row[:n] if stop is None else row[:stop]
        results.append(
            Generation(
                key=req.key,
                prompt=prompt,
                text=lm.tokenizer.decode(text_ids, skip_special_tokens=True),
                token_ids=row[:n],
                n_generated=n,
                finish_reason="length" if stop is None else "eos",
                prefill_s=first - start,
                decode_s=end - first,
                batch_size=len(requests),
            )
        )
    for probe in probes:
        for result, records in zip(results, probe.end_batch(n_generated)):
            result.probe_records[probe.name] = records
    return results
