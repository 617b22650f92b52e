"""EVICT_TO through the service, real Ray actors and MariaDB: what the LLM is sent, turn after turn."""

from __future__ import annotations

import uuid
from typing import Any

from gateways.serve import build_runtime
from gateways.service.events import TurnFinished, TurnStarted
from gateways.settings import Settings
from store import DatabaseURL
from tests.bench.prefix import prefix_stable
from tests.llm_server import FakeLLM

TURNS = 24


async def prompts_of_a_long_chat(
    evict_to: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> tuple[list[list[dict[str, Any]]], list[int]]:
    env = {
        "DATABASE_URL": db_url.to_url(),
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
        "MODEL_MAX_TOKENS": "400",
        "MAX_TOKENS": "100",
        "EVICT_TO": evict_to,
        "CHAT_TURNS_PER_MINUTE": "0",
    }
    runtime = build_runtime(Settings.from_env(env), in_process=True)
    user, evicted = f"user-{uuid.uuid4().hex[:8]}", []
    try:
        chat_id = None
        for n in range(TURNS):
            text = f"Message {n:02d}: tell me one more short thing about the weather in Lisbon today."
            events = [e async for e in runtime.service.turn(user, chat_id, text, create_missing=True)]
            started, finished = events[0], events[-1]
            assert isinstance(started, TurnStarted) and isinstance(finished, TurnFinished), events
            chat_id = started.chat_id
            evicted.append(started.evicted)
    finally:
        await runtime.close()
    return [r.body["messages"] for r in fake_llm.records], evicted


async def test_at_three_quarters_the_prompt_keeps_its_prefix_across_turns_and_at_one_it_does_not(
    db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    everything, evicted_at_one = await prompts_of_a_long_chat("1.0", db_url, fake_llm)
    fake_llm.records.clear()
    low_water, evicted_at_three_quarters = await prompts_of_a_long_chat("0.75", db_url, fake_llm)
    assert len(everything) == len(low_water) == TURNS

    full = (
        next(n for n, count in enumerate(evicted_at_one) if count) - 1
    )  # turns kept before the first eviction
    stable_at_one = prefix_stable(everything)
    assert stable_at_one == [True] * full + [False] * (TURNS - 1 - full)  # once full, never stable

    stable = prefix_stable(low_water)
    assert stable[:full] == stable_at_one[:full]
    # Once full, a turn evicts only when the window reaches its budget again: most turns keep
    # the prefix, and each turn that evicts takes more than one message to make that room.
    assert sum(stable[full:]) * 2 > TURNS - 1 - full
    assert not any(stable[n - 1] for n, count in enumerate(evicted_at_three_quarters) if count)
    assert all(count >= 2 for count in evicted_at_three_quarters if count)
