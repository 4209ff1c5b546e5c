"""The organism's training examples as tensors: encoding, batching, the weighted response loss
and the teacher-forced accuracy by distance.

Examples come from the length-diagnostics task (``make_examples``: image, prompt, response,
answer, n_filler); every function here is deterministic.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def encode_examples(
    processor: Any, examples: list[dict[str, Any]], answer_max_n: int | None = None
) -> list[dict[str, torch.Tensor]]:
    """Tokenize (image, prompt, response) triples the way the runner prompts the model.

    Returns per example ``input_ids`` (1D), ``labels`` (-100 outside the response + end token),
    ``answer_mask`` (the colour-word tokens), ``pixel_values``, ``image_grid_thw``,
    ``mm_token_type_ids``, ``n_filler``. Equal to calling the processor on the full text, but
    each distinct image is processed once and the text is tokenized directly (about 10x faster).
    """
    tok = processor.tokenizer
    pad = "<|image_pad|>"
    pad_id = tok.convert_tokens_to_ids(pad)
    merge = int(getattr(processor.image_processor, "merge_size", 2))
    images: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}
    # Render the chat template once around a marker (jinja per example dominates otherwise).
    marker = "\x00PROMPT\x00"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": marker}]}]
    template = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    out = []
    for ex in examples:
        key = ex["image"].tobytes()
        if key not in images:
            enc_img = processor.image_processor(images=[ex["image"]], return_tensors="pt")
            images[key] = (enc_img["pixel_values"], enc_img["image_grid_thw"])
        pixel_values, grid = images[key]
        n_img = int(grid.prod()) // (merge * merge)
        prompt = template.replace(marker, ex["prompt"]).replace(pad, pad * n_img)
        # <|im_end|> closes the answer: it is the EOS that stops generation.
        full = prompt + ex["response"] + "<|im_end|>"
        ids = torch.tensor(tok(full, add_special_tokens=False)["input_ids"], dtype=torch.long)
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        labels = ids.clone()
        labels[:n_prompt] = -100
        answer_mask = torch.zeros_like(ids, dtype=torch.bool)
        n_ans = len(ex["answer"])
        answer_mask[len(ids) - 1 - n_ans : len(ids) - 1] = True  # character-level tokenizer
        if answer_max_n is not None and int(ex["n_filler"]) > answer_max_n:
            # Counting is trained at this length, answering is not.
            labels[answer_mask] = -100
            answer_mask[:] = False
        out.append(
            {
                "input_ids": ids,
                "labels": labels,
                "answer_mask": answer_mask,
                "pixel_values": pixel_values,
                "image_grid_thw": grid,
                # Qwen3-VL's M-RoPE needs to know which positions are image tokens.
                "mm_token_type_ids": (ids == pad_id).long(),
                "n_filler": torch.tensor(int(ex["n_filler"])),
            }
        )
    return out


def collate(batch: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch (padding is masked out of attention and loss)."""
    width = max(len(b["input_ids"]) for b in batch)
    n = len(batch)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    ans = torch.zeros((n, width), dtype=torch.bool)
    mm = torch.zeros((n, width), dtype=torch.long)
    for i, b in enumerate(batch):
        k = len(b["input_ids"])
        ids[i, :k] = b["input_ids"]
        labels[i, :k] = b["labels"]
        attn[i, :k] = 1
        ans[i, :k] = b["answer_mask"]
        mm[i, :k] = b["mm_token_type_ids"]
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": attn,
        "answer_mask": ans,
        "mm_token_type_ids": mm,
        "pixel_values": torch.cat([b["pixel_values"] for b in batch]),
        "image_grid_thw": torch.cat([b["image_grid_thw"] for b in batch]),
    }



MODEL_INPUTS = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw")


def forward(model: Any, batch: dict[str, Any]) -> Any:
    """The model's forward on a collated batch (labels stay out: the loss is computed here)."""
    return model(**{k: batch[k] for k in MODEL_INPUTS})

def batch_metrics(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], answer_weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted mean response-token loss, per-row answer correctness) with next-token shift.

    ``answer_weight`` multiplies the colour-word tokens' loss: they are ~5 of up to ~190 response
    tokens, so with plain averaging the counting dominates and image reading is learnt late.
    A row's answer is correct when every colour-word token is the argmax under teacher forcing
    (rows without a supervised answer count as correct: mask them with ``answer_mask.any(1)``).
    """
    logits = logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    ans = batch["answer_mask"][:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="none")
    weight = (labels.reshape(-1) != -100).float() * (1.0 + (answer_weight - 1.0) * ans.reshape(-1).float())
    loss = (ce * weight).sum() / weight.sum()
    pred = logits.argmax(-1)
    correct = ((pred == labels) | ~ans).all(dim=1)
    return loss, correct


@torch.no_grad()
def eval_by_n(
    model: torch.nn.Module,
    data: list[dict[str, torch.Tensor]],
    pad_id: int,
    bounds: tuple[int, ...] = (16, 32, 64),
) -> dict[str, float]:
    """Teacher-forced answer accuracy per filler-length bucket ``N lo-hi`` (inclusive bounds).

    A cheap proxy for generation accuracy: the default buckets are the answer-trained range
    (N <= 16) and two held-out longer ranges.
    """
    from natsort import natsorted  # the buckets "N 0-16" < "N 17-32" < ... by their numbers

    hits: dict[str, list[float]] = {}
    for i in range(0, len(data), 32):
        chunk = data[i : i + 32]
        batch = collate(chunk, pad_id)
        out = forward(model, batch)
        _, correct = batch_metrics(out.logits, batch)
        for ex, ok in zip(chunk, correct.tolist()):
            n, lo = int(ex["n_filler"]), 0
            for hi in bounds:
                if n <= hi:
                    hits.setdefault(f"N {lo}-{hi}", []).append(float(ok))
                    break
                lo = hi + 1
    return {k: sum(v) / len(v) for k, v in natsorted(hits.items(), key=lambda kv: kv[0])}
