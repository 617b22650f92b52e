"""What a run measures and for how long: the full run's defaults and the CI smoke preset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from store import DatabaseURL
from tests.bench.llm import Profile

DEFAULT_SERVER = "mysql://chatservice:chatservice@127.0.0.1:3306/chatservice_test"
BENCH_DATABASE = "chatservice_bench"
RESULTS = Path(__file__).with_name("results")
INTERFACES = ("grpc_v1", "grpc_legacy", "http_sse")
RAY_CALLS_PER_TURN = 2  # begin_turn and complete_turn (DESIGN.md, "What runs where")
ZERO_LATENCY = Profile(ttft=0.0, token_delay=0.0, words=5)
FIXED_LATENCY = Profile(ttft=0.05, token_delay=0.005, words=40)


def bench_database() -> str:
    """The server of TEST_DATABASE_URL, with a database of the benchmark's own."""
    url = DatabaseURL.parse(os.environ.get("TEST_DATABASE_URL", DEFAULT_SERVER))
    return replace(url, database=BENCH_DATABASE).to_url()


@dataclass(frozen=True)
class BenchConfig:
    concurrency: tuple[int, ...] = (1, 10, 50, 200)
    warmup: float = 2.0  # seconds of each phase not measured
    duration: float = 8.0  # seconds measured
    history: int = 200  # stored messages of the service's chats; the window holds about as many
    baseline_histories: tuple[int, ...] = (10, 200)
    max_tokens: int = 512
    throughput_llm: Profile = ZERO_LATENCY
    overhead_llm: Profile = FIXED_LATENCY
    cold_chats: int = 5  # chats measured per stored-history length
    cold_histories: tuple[int, ...] = (10, 500)
    memory_counts: tuple[int, ...] = (10, 100)  # then MAX_LIVE_CHATS, or as many as the pool holds
    memory_max: int = 300
    prefix_levels: tuple[float, ...] = (1.0, 0.75)  # EVICT_TO settings whose prompt prefixes are compared
    prefix_turns: int = 40  # turns on one chat of `history` messages, per EVICT_TO setting
    idle_seconds: float = 2.0  # CHAT_IDLE_SECONDS of the served process that measures cold activation
    ceiling_seconds: float = 3.0
    ceiling_actors: int = 8
    baseline_pool: int = 16
    database_url: str = field(default_factory=bench_database)
    out: Path = RESULTS
    smoke: bool = False
    report_only: bool = False

    @property
    def pool(self) -> int:
        return max(self.concurrency)


def smoke(**overrides: object) -> BenchConfig:
    """Seconds, small numbers: checks that every figure is produced, not what it is."""
    base = BenchConfig(
        concurrency=(2,),
        warmup=0.2,
        duration=0.8,
        history=20,
        baseline_histories=(10, 20),
        overhead_llm=Profile(ttft=0.02, token_delay=0.002, words=10),
        cold_chats=1,
        cold_histories=(10, 50),
        memory_counts=(1,),
        memory_max=2,
        prefix_turns=6,
        idle_seconds=1.0,
        ceiling_seconds=0.2,
        ceiling_actors=2,
        baseline_pool=4,
        smoke=True,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]
