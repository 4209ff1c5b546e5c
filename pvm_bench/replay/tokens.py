"""The output tokens to replay: the engine's own ids when given, else a checked re-tokenisation.

A replay is only exact if the fed tokens are the ones the engine generated. When a log carries
token ids they are used as they are. Otherwise the text is re-tokenised (``add_special_tokens``
off) and the result is checked as far as the log allows:

* the round trip ``decode(encode(text)) == text`` (skipping special tokens, as pvm-bench and the
  lmms-eval backends decode);
* the count, when the log knows how many tokens the engine produced (pvm-bench's
  ``n_generated``, lmms-eval's ``token_counts[].output_tokens``), with the stop token counted.

A sample failing either check is replayed anyway and FLAGGED (``metadata.replay.tokens_exact``
false in samples.jsonl), never silently shifted: its attention rows may belong to a different
segmentation of the same text. A generation that stopped at EOS gets one EOS id appended (the
stop token is generated, so it is a step; which EOS id it was does not matter: the last token is
never fed). When the log does not say why generation ended (lmms-eval), the token count decides:
``output_tokens`` equal to the re-tokenised length means no stop token (``length``), one more
means EOS; with no count either, EOS is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplayTokens:
    """``ids`` to replay; ``exact``: checked equal to the engine's; ``how``: "log" | "retokenised"; ``why``: a failed
    check."""

    ids: list[int]
    exact: bool
    how: str
    finish_reason: str = "eos"
    why: str | None = None

    def metadata(self) -> dict[str, Any]:
        """What samples.jsonl records per sample (``metadata.replay``)."""
        out: dict[str, Any] = {"tokens_exact": self.exact, "tokens_from": self.how}
        if self.why:
            out["tokens_check"] = self.why
        return out


def output_tokens(tokenizer: Any, text: str, *, token_ids: list[int] | None, finish_reason: str | None,
                  n_generated: int | None, eos_id: int | None) -> ReplayTokens:
    """The tokens to replay for one output (see the module docstring); ``finish_reason`` None = unknown."""
    if token_ids is not None:
        ids = [int(t) for t in token_ids]
        finish = finish_reason or ("eos" if ids and ids[-1] == eos_id else "length")
        return ReplayTokens(ids, True, "log", finish)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    why = None
    if tokenizer.decode(ids, skip_special_tokens=True) != text:
        why = "decode(encode(output)) differs from the output"
    if finish_reason is None:
        finish_reason = "length" if n_generated is not None and n_generated == len(ids) else "eos"
    if finish_reason == "eos" and eos_id is not None:
        ids.append(int(eos_id))
    if why is None and n_generated is not None and n_generated != len(ids):
        why = f"re-tokenised to {len(ids)} tokens, the engine produced {n_generated}"
    return ReplayTokens(ids, why is None, "retokenised", finish_reason, why)
