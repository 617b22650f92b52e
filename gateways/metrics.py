"""Turn metrics recorded by gateways through ray.util.metrics (exported on Ray's Prometheus endpoint).

Ray prefixes every name with `ray_` and counters get `_total`: `turns` is scraped as
`ray_chatservice_turns_total{outcome="completed",...}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

TURN_SECONDS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
FIRST_TOKEN_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]


@dataclass(frozen=True, slots=True)
class _Metrics:
    turns: Counter
    turn_seconds: Histogram
    first_token_seconds: Histogram
    prompt_tokens: Counter
    completion_tokens: Counter
    evicted: Counter
    llm_errors: Counter
    correction: Gauge


@cache
def _metrics() -> _Metrics:
    # Built on first use, in the process that records them (the gateway, Ray's driver).
    return _Metrics(
        turns=Counter("chatservice_turns", "Turns by how they ended.", ("outcome",)),
        turn_seconds=Histogram(
            "chatservice_turn_seconds",
            "Seconds from a turn's arrival to its stored answer (completed turns).",
            TURN_SECONDS,
            ("model",),
        ),
        first_token_seconds=Histogram(
            "chatservice_time_to_first_token_seconds",
            "Seconds from a turn's arrival to the first token of its answer.",
            FIRST_TOKEN_SECONDS,
            ("model",),
        ),
        prompt_tokens=Counter(
            "chatservice_prompt_tokens",
            "Prompt tokens of completed turns (the server's count, else the estimate).",
            ("model",),
        ),
        completion_tokens=Counter(
            "chatservice_completion_tokens",
            "Completion tokens of completed turns (the server's count, else the estimate).",
            ("model",),
        ),
        evicted=Counter("chatservice_evicted_messages", "Messages evicted from context windows."),
        llm_errors=Counter("chatservice_llm_errors", "LLM request failures by kind.", ("kind",)),
        correction=Gauge(
            "chatservice_token_correction",
            "Server-reported prompt tokens per token the window counts, learned per model.",
            ("model",),
        ),
    )


def correction(model: str, value: float) -> None:
    _metrics().correction.set(value, tags={"model": model})


def llm_error(kind: str) -> None:
    _metrics().llm_errors.inc(tags={"kind": kind})


def turn_ended(outcome: str) -> None:
    _metrics().turns.inc(tags={"outcome": outcome})


def turn_begun(evicted: int) -> None:
    if evicted:
        _metrics().evicted.inc(evicted)


def first_token(model: str, seconds: float) -> None:
    _metrics().first_token_seconds.observe(seconds, tags={"model": model})


def turn_completed(model: str, seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
    m, tags = _metrics(), {"model": model}
    m.turns.inc(tags={"outcome": "completed"})
    m.turn_seconds.observe(seconds, tags=tags)
    if prompt_tokens:
        m.prompt_tokens.inc(prompt_tokens, tags=tags)
    if completion_tokens:
        m.completion_tokens.inc(completion_tokens, tags=tags)
