"""The benchmark's prompt-cache figures, on prompts whose answer is known by hand."""

from __future__ import annotations

import itertools

import pytest

from gateways.llm.tokenizer import tokenizer_for
from tests.bench.prefix import figures, openai_cached, prefix_stable, shared_messages

SYS = {"role": "system", "content": "sys"}


def m(n: int) -> dict[str, str]:
    return {"role": "user" if n % 2 else "assistant", "content": f"message {n}"}


def test_a_prompt_that_grows_is_stable_and_one_that_loses_its_head_is_not() -> None:
    grown = [[SYS, m(1)], [SYS, m(1), m(2), m(3)], [SYS, m(3), m(4), m(5)], [SYS, m(3), m(4), m(5), m(6)]]
    assert prefix_stable(grown) == [True, False, True]
    assert [shared_messages(a, b) for a, b in itertools.pairwise(grown)] == [2, 1, 4]


@pytest.mark.parametrize(("shared", "cached"), [(0, 0), (1023, 0), (1024, 1024), (1151, 1024), (1152, 1152)])
def test_openai_bills_as_cached_a_prefix_of_1024_tokens_or_more_in_steps_of_128(
    shared: int, cached: int
) -> None:
    assert openai_cached(shared) == cached


def test_figures_count_the_shared_prefix_of_each_turn_against_what_was_sent() -> None:
    tok = tokenizer_for("gpt-4o-mini")
    prompts = [[SYS, m(1)], [SYS, m(1), m(2), m(3)], [SYS, m(3), m(4), m(5)]]
    f = figures(prompts, tok)
    count = [tok.count_message(x["role"], x["content"]) for x in (SYS, m(1), m(2), m(3), m(4), m(5))]
    sent = tok.count_messages(prompts[1]) + tok.count_messages(prompts[2])
    assert f["turns"] == 2 and f["prefix_stable_share"] == 0.5
    assert f["kv_cache_hit_share"] == pytest.approx((count[0] + count[1] + count[0]) / sent)
    assert f["openai_cached_share"] == 0  # short prompts are never cached by OpenAI
    assert f["input_cost_vs_no_cache"] == {"1/2": 1.0, "1/10": 1.0}
