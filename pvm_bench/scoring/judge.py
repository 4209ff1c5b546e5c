r"""A local answer-extraction judge: any causal LM, run with lmms-eval's MathVista extraction prompt.

lmms-eval 0.7.3 extracts MathVista answers with a GPT model: ``MathVistaEvaluator.extract_answer``
builds ``create_test_prompt(DEMO_PROMPT, query, response)`` (``tasks/mathvista/mathvista_evals.py``
lines 111-149 for ``DEMO_PROMPT``, 212-216 for the prompt, 259 for the call) and sends it as one
user message with ``temperature=0, max_tokens=256`` (lines 172-204). :class:`Judge` does the same
with a local Hugging Face causal LM (a directory or a hub id), loaded with
``AutoModelForCausalLM``/``AutoTokenizer``, greedy decoding, ``trust_remote_code`` off unless the
caller passes it. The chat template is applied when the tokenizer has one (a chat model gets the
prompt as a user turn, as the API does); otherwise the prompt is fed as plain text.

Tasks take a judge through ``task.set_judge(judge)``; with one, the judge's extraction is scored
and ``Score.details`` holds ``extractor == "judge"`` and ``judge_raw`` (the judge's text).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pvm_bench.errors import UserError

# lmms_eval/tasks/mathvista/mathvista_evals.py (0.7.3) lines 111-149, verbatim.
DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""  # noqa: E501 (lmms-eval's prompt text verbatim: its lines are the prompt's lines)

#: lmms-eval's judge budget (mathvista_evals.py line 259: ``max_tokens=256``).
MAX_NEW_TOKENS = 256


class JudgeError(UserError):
    """The judge model cannot be loaded or run."""


def create_test_prompt(query: str, response: str, demo_prompt: str = DEMO_PROMPT) -> str:
    """lmms-eval ``MathVistaEvaluator.create_test_prompt`` (mathvista_evals.py lines 212-216)."""
    return f"{demo_prompt.strip()}\n\n{query}\n\n{response}\n\nExtracted answer: "


def _fingerprint(model: Any, model_id: str) -> str:
    """A short hash of the judge's identity: its config, and its weight files' sizes/names when
    it is a local directory (hashing GBs of weights per run would be too slow)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    path = Path(model_id)
    if path.is_dir():
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        h.update(str(commit).encode())
    return h.hexdigest()[:16]


class Judge:
    """A loaded judge model. Use :meth:`load`; then :meth:`extract` or :meth:`complete`."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str, device: str = "cpu",
                 max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.fingerprint = _fingerprint(model, model_id)

    @property
    def name(self) -> str:
        return self.model_id

    @classmethod
    def load(cls, model_id: str, device: str = "cpu", dtype: str | None = None, *,
             trust_remote_code: bool = False, max_new_tokens: int = MAX_NEW_TOKENS) -> Judge:
        """Load ``model_id`` (local dir or hub id) as a causal LM; one ``error:`` line if it fails.
        ``device="auto"``: the first GPU when there is one, else the CPU."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from pvm_bench.models.loading import DTYPES

        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if dtype and dtype in DTYPES:
            kwargs["dtype"] = DTYPES[dtype]
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(model_id, **kwargs)
        except Exception as exc:
            raise JudgeError(
                f"cannot load judge model '{model_id}' ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                "pass --judge with a local causal-LM directory or a reachable hub id"
            ) from exc
        if device in (None, "", "auto"):
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        return cls(model, tokenizer, model_id, device, max_new_tokens)

    def _encode(self, prompt: str) -> Any:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
            return tok(text, return_tensors="pt", add_special_tokens=False)
        return tok(prompt, return_tensors="pt")

    def complete(self, prompt: str) -> str:
        """The judge's greedy completion of ``prompt`` (at most ``max_new_tokens``), stripped."""
        import torch

        enc = self._encode(prompt).to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens, pad_token_id=pad,
                                      temperature=None, top_p=None, top_k=None)
        new = out[0, enc["input_ids"].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def extract(self, query: str, output: str) -> str:
        """lmms-eval's MathVista extraction: the judge reads the question and the model output and
        writes the final answer (``create_test_prompt``)."""
        return self.complete(create_test_prompt(query, output))

    def info(self) -> dict[str, Any]:
        """What run.json records about the judge."""
        return {"id": self.model_id, "fingerprint": self.fingerprint, "max_new_tokens": self.max_new_tokens,
                "decoding": "greedy", "prompt": "lmms-eval 0.7.3 MathVista DEMO_PROMPT (mathvista_evals.py:111)"}


def attach_judge(model_id: str, tasks: list[Any], *, device: str = "cpu", dtype: str | None = None,
                 trust_remote_code: bool = False) -> dict[str, Any]:
    """Load the judge once and hand it to every task that takes one (``task.set_judge``).

    Returns what run.json records (``record.model["judge"]``): the judge's :meth:`Judge.info` and
    the names of the tasks it scores. A judge for a selection without any judge-capable task is a
    user error (nothing would use it).
    """
    capable = [t for t in tasks if callable(getattr(t, "set_judge", None))]
    if not capable:
        names = ", ".join(t.name for t in tasks)
        raise JudgeError(f"--judge {model_id}: none of the selected tasks ({names}) uses a judge; "
                         "drop --judge or add a math task (mathvista, mathverse, mathvision)")
    judge = Judge.load(model_id, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    for task in capable:
        task.set_judge(judge)
    return {**judge.info(), "tasks": [t.name for t in capable]}
