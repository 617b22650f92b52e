"""What this machine allows, measured in the same run: Ray actor calls and MariaDB commits."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import asyncmy

from tests.bench.baseline import connect_kwargs


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": statistics.fmean(ordered) * 1000,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


async def _rate(call: Any, workers: int, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await call(i)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return done / (time.perf_counter() - started)


async def ray_ceiling(address: str, seconds: float, n_actors: int) -> dict[str, Any]:
    """A no-op call on an async actor (like a conversation actor): round trip, then calls/s."""
    import ray

    ray.init(address=address, namespace="chatservice-bench", logging_level="WARNING", configure_logging=False)

    @ray.remote(num_cpus=0)
    class NoOp:
        async def ping(self) -> None:
            return None

    actors = [NoOp.remote() for _ in range(n_actors)]  # type: ignore[attr-defined]
    await asyncio.gather(*(a.ping.remote() for a in actors))
    one = actors[0]
    for _ in range(50):
        await one.ping.remote()
    samples = []
    for _ in range(max(100, int(300 * seconds))):
        t = time.perf_counter()
        await one.ping.remote()
        samples.append(time.perf_counter() - t)
    one_actor = await _rate(lambda i: one.ping.remote(), 64, seconds)
    many = await _rate(lambda i: actors[i % len(actors)].ping.remote(), 64, seconds)
    for a in actors:
        ray.kill(a)
    starts = []
    for _ in range(3):  # what any activation pays before its own work: a new actor's first reply
        t = time.perf_counter()
        fresh = NoOp.remote()  # type: ignore[attr-defined]
        await fresh.ping.remote()
        starts.append(time.perf_counter() - t)
        ray.kill(fresh)
    ray.shutdown()
    return {
        "round_trip": _summary(samples),
        "calls_per_s_one_actor": one_actor,
        "actors": n_actors,
        "calls_per_s_many_actors": many,
        "calls_per_s": max(one_actor, many),
        "new_actor_first_reply": _summary(starts),
    }


async def db_ceiling(url: str, seconds: float) -> dict[str, Any]:
    """INSERT + COMMIT of one small row: sequential round trip, then commits/s over 8 connections."""
    kwargs = connect_kwargs(url)
    conns = [await asyncmy.connect(**kwargs, autocommit=False) for _ in range(8)]
    async with conns[0].cursor() as cur:
        await cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_ceiling (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "payload VARCHAR(200) NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
        )
    await conns[0].commit()

    async def insert(i: int) -> None:
        conn = conns[i % len(conns)]
        async with conn.cursor() as cur:
            await cur.execute("INSERT INTO bench_ceiling (payload) VALUES (%s)", ("a short chat message",))
        await conn.commit()

    samples = []
    for _ in range(max(50, int(100 * seconds))):
        t = time.perf_counter()
        await insert(0)
        samples.append(time.perf_counter() - t)
    rate = await _rate(insert, 8, seconds)
    for conn in conns:
        conn.close()
    return {"insert_commit": _summary(samples), "commits_per_s_8_connections": rate}
