"""Batched generation with left padding, per-sample seeds and probes.

Sampling is done by :class:`RowSampler`, a logits processor that draws each row's token
from that row's own ``torch.Generator`` (seeded per sample and repeat) and hands transformers
a one-hot score, so transformers runs its greedy loop. Results therefore do not depend on
batch size or order, only on each request's seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from pvm_bench.probes.base import BatchContext, Probe

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
    """Temperature / top-p sampling with one RNG per row; returns one-hot scores."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1).cpu()
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > self.top_p  # keep the smallest set reaching top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
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


def encode(lm: LoadedModel, requests: list[Request]) -> tuple[Any, list[str]]:
    """Tokenize a batch with left padding; returns the processor output and the prompt texts."""
    processor = lm.processor
    texts = [
        processor.apply_chat_template(strip_image_indices(r.messages), add_generation_prompt=True, tokenize=False)
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


@torch.inference_mode()
def generate(
    lm: LoadedModel,
    requests: list[Request],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    probes: list[Probe] | tuple[Probe, ...] = (),
) -> list[Generation]:
    """Generate for all ``requests`` as one batch.

    ``temperature == 0`` is greedy decoding. Generation stops per row at an EOS id (from the
    model's generation config and tokenizer) or after ``max_new_tokens`` (``finish_reason``
    ``"length"``: the output is truncated).
    """
    if not requests:
        return []
    enc, prompts = encode(lm, requests)
    input_ids = enc["input_ids"]
    ctx = BatchContext(
        input_ids=input_ids,
        attention_mask=enc["attention_mask"],
        image_mask=input_ids == lm.image_token_id,
        max_new_tokens=max_new_tokens,
    )
    clock = StepClock()
    processors = LogitsProcessorList()
    for probe in probes:
        probe.begin_batch(ctx)
        extra = probe.logits_processor()
        if extra is not None:
            processors.append(extra)
    processors.append(clock)
    if temperature > 0:
        processors.append(RowSampler([r.seed for r in requests], temperature, top_p))
    eos = eos_ids(lm)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos or None,
        pad_token_id=pad,
        suppress_tokens=lm.suppress_token_ids() or None,
    )
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
