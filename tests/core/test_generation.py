from __future__ import annotations

import pytest
from PIL import Image

from pvm_bench import load_model
from pvm_bench.models.generation import Request, ordered_images


def _requests(n: int) -> list[Request]:
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    return [
        Request(msgs, [Image.new("RGB", (32 + 16 * (i % 3), 48), (40 * i, 100, 200))], seed=100 + i, key=i)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lm(tiny_qwen3_vl):
    return load_model(str(tiny_qwen3_vl), device="cpu")


def test_greedy_batched_equals_single(lm):
    reqs = _requests(4)
    batched = lm.generate(reqs, max_new_tokens=12)
    single = [lm.generate([r], max_new_tokens=12)[0] for r in reqs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert all(g.n_generated == len(g.token_ids) for g in batched)


def test_sampling_depends_only_on_the_request_seed(lm):
    reqs = _requests(4)
    forward = lm.generate(reqs, max_new_tokens=10, temperature=0.7, top_p=0.9)
    backward = lm.generate(reqs[::-1], max_new_tokens=10, temperature=0.7, top_p=0.9)[::-1]
    assert [g.text for g in forward] == [g.text for g in backward]
    other = lm.generate([Request(reqs[0].messages, reqs[0].images, seed=999)], max_new_tokens=10, temperature=0.7)
    assert other[0].text != forward[0].text
    greedy = lm.generate(reqs[:1], max_new_tokens=10)
    assert greedy[0].text != forward[0].text  # a random model at T=0.7 does not follow argmax


def test_truncation_and_eos_are_recorded(lm):
    eos = lm.tokenizer.eos_token_id
    gens = lm.generate(_requests(4), max_new_tokens=24, temperature=1.0)
    reasons = set()
    for gen in gens:
        reasons.add(gen.finish_reason)
        if gen.finish_reason == "eos":
            assert gen.token_ids[-1] == eos and eos not in gen.token_ids[:-1] and not gen.truncated
            assert gen.n_generated <= 24
        else:
            assert gen.truncated and gen.n_generated == 24 and eos not in gen.token_ids
    assert reasons == {"eos", "length"}, reasons  # the seeded random model produces both


def test_image_parts_follow_their_index():
    a, b = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    msgs = [{"role": "user", "content": [{"type": "image", "index": 1}, {"type": "text", "text": "x"},
                                          {"type": "image", "index": 0}]}]
    assert ordered_images(Request(msgs, [a, b])) == [b, a]
