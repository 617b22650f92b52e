"""Both placements side by side (actor, hosted) with the stateless baseline; then hosted at 10,000 chats.

`python -m tests.bench.placements [--smoke] [--out DIR]` writes placements.json and placements.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncmy
import psutil

from store import DatabaseURL
from tests.bench.cluster import HOST_CLASS, ProcessTree, RayHead, live_actors, rss_of
from tests.bench.config import FIXED_LATENCY, RESULTS, ZERO_LATENCY, BenchConfig, smoke
from tests.bench.processes import Baseline
from tests.bench.runner import MB, Bench, connections, idle_cpu_percent, log, served
from tests.bench.stats import spread
from tests.bench.workload import chat_ids, seed_chats
from tests.serve_process import ServeProcess

PLACEMENTS = ("actor", "hosted")
NEW_CHAT_USERS = 10  # users who start a new chat at the same moment


@dataclass(frozen=True)
class Plan:
    """What one run measures: the levels of concurrent chats, and the hosted scale run's size."""

    bench: BenchConfig
    levels: tuple[int, ...] = (10, 50, 200)
    new_chat_rounds: int = 5
    scale_chats: int = 10_000
    scale_history: int = 50
    cold_history: int = 500
    cold_chats: int = 5
    # The actor placement needs a connection per live chat: raised for the run, then restored.
    max_connections: int = 400


def smoke_plan() -> Plan:
    return Plan(smoke(concurrency=(2,)), levels=(2,), new_chat_rounds=1, scale_chats=20, cold_history=50)


@contextlib.contextmanager
def max_connections(url: str, value: int) -> Iterator[None]:
    """MariaDB's max_connections at `value` for a while (needs the privilege; else unchanged)."""
    before, _ = asyncio.run(connections(url))
    changed = asyncio.run(_set_global(url, value))
    try:
        yield
    finally:
        if changed:
            asyncio.run(_set_global(url, before))


async def _set_global(url: str, value: int) -> bool:
    u = DatabaseURL.parse(url)
    conn = await asyncmy.connect(host=u.host, port=u.port, user=u.user, password=u.password, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SET GLOBAL max_connections = {int(value)}")
        return True
    except asyncmy.errors.OperationalError as exc:
        log(f"max_connections stays as it is ({exc.args[-1]})")
        return False
    finally:
        conn.close()


class Placements:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.bench = Bench(replace(plan.bench, concurrency=(max(plan.levels),)))
        self.results: dict[str, Any] = {"placements": {}, "baseline": []}

    def env(self, placement: str, live: int) -> dict[str, str]:
        return self.bench.serve_env(3600) | {
            "CONVERSATION_PLACEMENT": placement,
            "HOSTS_PER_NODE": "2",
            "MAX_LIVE_CHATS": str(live),
        }

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        b = self.bench
        with b.running():
            self.results["meta"] = b.meta() | {"levels": self.plan.levels, "smoke": b.cfg.smoke}
            b.seed()
            with max_connections(b.cfg.database_url, self.plan.max_connections):
                for placement in PLACEMENTS:
                    self.results["placements"][placement] = self.placement(placement)
                self.results["baseline"] = self.baseline()
            self.results["scale"] = self.scale()
        self.results["meta"]["elapsed_s"] = time.monotonic() - started
        return self.results

    def fresh_head(self) -> None:
        """A new Ray head: no process of the last placement (200 idle actors) takes CPU from the next."""
        b = self.bench
        assert b.head is not None
        b.head.stop()
        b.head = RayHead().start()

    def placement(self, placement: str) -> dict[str, Any]:
        b, plan = self.bench, self.plan
        log(f"placement {placement}")
        self.fresh_head()
        cap = len(b.pool) + NEW_CHAT_USERS * plan.new_chat_rounds  # every chat this phase makes stays live
        with served(self.env(placement, cap)) as serve:
            assert serve.proc is not None and b.head is not None and b.head.proc is not None
            service = ProcessTree([serve.proc.pid, b.head.proc.pid])
            urls = b.urls(serve)
            b.touch("grpc_v1", b.pool[:1], urls, 1)  # the gateway's first turn loads the tokenizer
            time.sleep(1.0)
            available = psutil.virtual_memory().available
            out: dict[str, Any] = {"phases": []}
            live = 1
            for c in plan.levels:  # at C concurrent chats, C chats are live (as in python -m tests.bench)
                b.touch("grpc_v1", b.pool[live:c], urls, 8)
                live = max(live, c)
                for profile in (ZERO_LATENCY, FIXED_LATENCY):
                    row = b.phase("grpc_v1", b.pool[:c], c, profile, urls, service, llm=profile.as_dict())
                    out["phases"].append(row)
            out["memory_per_live_chat_mb"] = (available - psutil.virtual_memory().available) / MB / live
            out["new_chats"] = self.new_chats(placement, urls)
        return out

    def new_chats(self, placement: str, urls: dict[str, str]) -> dict[str, Any]:
        """NEW_CHAT_USERS new users start a chat at once, a few rounds: their first tokens."""
        b = self.bench
        b.llm.configure(ZERO_LATENCY)
        ttft: list[float] = []
        for r in range(self.plan.new_chat_rounds):
            # No chat id: the service makes a new chat, as a user's first message does.
            chats = [(f"new-{placement}-{r}-{u}", "") for u in range(NEW_CHAT_USERS)]
            turns = b.touch("grpc_v1", chats, urls, NEW_CHAT_USERS)
            ttft += [t[1] - t[0] for t in turns]
        return {"users": NEW_CHAT_USERS, "rounds": self.plan.new_chat_rounds, "ttft_ms": spread(ttft)}

    def baseline(self) -> list[dict[str, Any]]:
        b = self.bench
        base = Baseline(
            b.cfg.database_url, b.llm.base_url, b.context_tokens, b.cfg.max_tokens, b.cfg.baseline_pool
        )
        try:
            b.touch("baseline", chat_ids(f"base{b.cfg.baseline_histories[0]}", 1), b.urls(base=base), 1)
            return [
                row | {"llm": profile.as_dict()}
                for c in self.plan.levels
                for profile in (ZERO_LATENCY, FIXED_LATENCY)
                for row in b.references(c, profile, base)
            ]
        finally:
            base.close()

    def scale(self) -> dict[str, Any]:
        """Hosted with the database's own max_connections: many live chats, their memory and connections."""
        b, plan = self.bench, self.plan
        n = plan.scale_chats
        log(f"hosted scale: seeding {n} chats of {plan.scale_history} messages")
        settings = b.settings(3600)
        chats = chat_ids("scale", n)
        cold = chat_ids("coldscale", plan.cold_chats)
        big = replace(settings.default_params, context_tokens=128_000)
        url = DatabaseURL.parse(b.cfg.database_url)

        async def seed() -> None:
            await seed_chats(url, settings.default_params, chats, plan.scale_history)
            await seed_chats(url, big, cold, plan.cold_history)

        asyncio.run(seed())
        self.fresh_head()
        most, before = asyncio.run(connections(b.cfg.database_url))
        with served(self.env("hosted", n + 1000)) as serve:
            return self.scale_run(serve, chats, cold, most, before)

    def scale_run(
        self,
        serve: ServeProcess,
        chats: list[tuple[str, str]],
        cold: list[tuple[str, str]],
        most: int,
        before: int,
    ) -> dict[str, Any]:
        b = self.bench
        assert b.head is not None
        urls = b.urls(serve)
        b.llm.configure(ZERO_LATENCY)
        available = psutil.virtual_memory().available
        started = time.monotonic()
        peak = 0
        for i in range(0, len(chats), 1000):
            turns = b.touch("grpc_v1", chats[i : i + 1000], urls, 16)
            assert len(turns) == len(chats[i : i + 1000])
            peak = max(peak, asyncio.run(connections(b.cfg.database_url))[1])
        rate = len(chats) / (time.monotonic() - started)
        time.sleep(2.0)
        drop = available - psutil.virtual_memory().available
        hosts = [pid for _, pid in live_actors(b.head.address, HOST_CLASS)]
        cold_turns = b.touch("grpc_v1", cold, urls, 1)
        warm_turns = b.touch("grpc_v1", cold, urls, 1)
        out = {
            "live_chats": len(chats),
            "stored_messages_per_chat": self.plan.scale_history,
            "activations_per_s": rate,
            "memory_per_live_chat_mb": drop / MB / len(chats),
            "host_rss_mb": [m["rss"] / MB for m in rss_of(hosts)],
            "host_idle_cpu_percent": idle_cpu_percent(hosts, 5.0),
            "max_connections": most,
            "connections_before": before,
            "connections_peak": peak,
            "cold_history": self.plan.cold_history,
            "cold_ttft_ms": spread([t[1] - t[0] for t in cold_turns]),
            "warm_ttft_ms": spread([t[1] - t[0] for t in warm_turns]),
        }
        log(
            f"hosted scale: {len(chats)} live chats, {out['memory_per_live_chat_mb']:.3f} MB each, "
            f"connections {before} -> {peak} of {most}"
        )
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.placements", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds and small numbers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for placements.json and .md")
    parser.add_argument("--chats", type=int, help="live chats of the hosted scale run [default: 10000]")
    args = parser.parse_args(argv)
    plan = smoke_plan() if args.smoke else Plan(BenchConfig())
    if args.chats:
        plan = replace(plan, scale_chats=args.chats)
    results = Placements(plan).run()
    from tests.bench.placement_report import write

    for path in write(results, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
