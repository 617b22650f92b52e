"""Prefix-stable turns under EVICT_TO: how much of each prompt a prompt cache could reuse.

For each EVICT_TO level, one chat seeded with the run's history (its window full, as the pool's) takes
a run of turns through `chatservice serve`, whose LLM is a test server that records every prompt.
A turn is prefix-stable when its prompt begins with the previous turn's whole prompt. From the shared
prefixes: the share of prompt tokens a KV cache of the previous prompt reuses (vLLM, llama.cpp), the
share OpenAI bills as cached (prompts of 1024 tokens or more, in steps of 128 tokens), and what the
input then costs against no caching at a cached-input price of half (gpt-4o-mini) and a tenth.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from gateways.llm.tokenizer import Tokenizer, tokenizer_for
from store import DatabaseURL
from store.records import ChatParams
from tests.bench.workload import chat_ids, seed_chats, user_text
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

Prompt = list[dict[str, Any]]
OPENAI_MIN_CACHED, OPENAI_CACHE_STEP = 1024, 128
CACHED_PRICE_RATIOS = {"1/2": 0.5, "1/10": 0.1}  # cached input price / input price (1/2: gpt-4o-mini)


def prefix_stable(prompts: Sequence[Prompt]) -> list[bool]:
    """For each turn after the first: does its prompt begin with the previous turn's whole prompt?"""
    return [now[: len(before)] == before for before, now in itertools.pairwise(prompts)]


def shared_messages(before: Prompt, now: Prompt) -> int:
    """How many leading messages two prompts have in common."""
    return next(
        (i for i, (a, b) in enumerate(zip(before, now, strict=False)) if a != b), min(len(before), len(now))
    )


def openai_cached(shared_tokens: int) -> int:
    """The tokens OpenAI bills as cached for a shared prefix of this size."""
    if shared_tokens < OPENAI_MIN_CACHED:
        return 0
    return shared_tokens // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP


def figures(prompts: Sequence[Prompt], tokenizer: Tokenizer) -> dict[str, Any]:
    """What a prompt cache makes of these consecutive prompts (the first only primes it)."""
    sent = reused = billed_cached = 0
    for before, now in itertools.pairwise(prompts):
        counts = [tokenizer.count_message(m["role"], m["content"]) for m in now]
        shared = sum(counts[: shared_messages(before, now)])
        sent += tokenizer.count_messages(now)
        reused += shared
        billed_cached += openai_cached(shared)
    stable = prefix_stable(prompts)
    cached_share = billed_cached / sent if sent else 0.0
    return {
        "turns": len(stable),
        "prefix_stable_share": sum(stable) / len(stable) if stable else 0.0,
        "kv_cache_hit_share": reused / sent if sent else 0.0,
        "openai_cached_share": cached_share,
        "input_cost_vs_no_cache": {
            name: 1 - cached_share * (1 - ratio) for name, ratio in CACHED_PRICE_RATIOS.items()
        },
        "mean_prompt_tokens": sent / len(stable) if stable else 0.0,
    }


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        if r.status != 200:
            raise RuntimeError(f"turn failed with {r.status}")


def one_level(
    evict_to: float, env: dict[str, str], params: ChatParams, database: str, history: int, turns: int
) -> dict[str, Any]:
    """One chat of `history` messages, then `turns` turns through a served process at this EVICT_TO."""
    ((user, chat),) = chat_ids(f"prefix{evict_to}", 1)
    asyncio.run(seed_chats(DatabaseURL.parse(database), params, [(user, chat)], history))
    with FakeLLM() as llm:
        serve = ServeProcess(
            {**env, "OPENAI_BASE_URL": llm.base_url, "EVICT_TO": str(evict_to), "AUTO_TITLE": "0"}
        )
        serve.start(timeout=240)
        try:
            for n in range(turns):
                _post(
                    f"{serve.url}/v1/users/{user}/chats/{chat}/messages", {"content": user_text(history + n)}
                )
        finally:
            serve.stop()
        prompts = [r.body["messages"] for r in llm.records]
    return figures(prompts, tokenizer_for(params.model))


def measure(
    levels: Sequence[float],
    env: dict[str, str],
    params: ChatParams,
    database: str,
    history: int,
    turns: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    out: dict[str, Any] = {"history": history, "turns": turns, "levels": {}}
    for level in levels:
        result = one_level(level, env, params, database, history, turns)
        out["levels"][str(level)] = result
        log(
            f"EVICT_TO={level}: {result['prefix_stable_share']:.0%} prefix-stable turns, "
            f"{result['kv_cache_hit_share']:.0%} of prompt tokens reusable from the KV cache"
        )
    return out


def markdown(prefix: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Prefix-stable turns (EVICT_TO): {prefix['turns']} turns on a chat of {prefix['history']} messages",
        "",
        "A turn is prefix-stable when its prompt begins with the previous turn's whole prompt. KV-cache hit = "
        "share of prompt tokens in the prefix shared with the previous prompt (vLLM, llama.cpp reuse it); "
        "OpenAI cached = the share OpenAI bills as cached (prompts of 1024+ tokens, in 128-token steps).",
        "",
        "| EVICT_TO | prefix-stable turns | KV-cache hit | OpenAI cached | input cost vs no cache, cached "
        f"input at {' / '.join(CACHED_PRICE_RATIOS)} the price | mean prompt tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for level, f in prefix["levels"].items():
        costs = " / ".join(f"{v:.0%}" for v in f["input_cost_vs_no_cache"].values())
        lines.append(
            f"| {level} | {f['prefix_stable_share']:.0%} | {f['kv_cache_hit_share']:.0%} "
            f"| {f['openai_cached_share']:.0%} | {costs} | {f['mean_prompt_tokens']:,.0f} |"
        )
    return lines
