"""The fault suite: the real `chatservice serve` driven by many chats while things break.

Each scenario ends with the same checks, from the client's log of every acknowledged message
against the database: nothing acknowledged is missing, nothing is duplicated, each chat's order is
the order the client saw, every answer is whole or flagged interrupted, and every live window (a
conversation actor's, or a host's) equals the window rebuilt from the store. Scenarios 2 and 3 run
in both placements; 1's hosted twin is test_host_kills.py. The counts go to artifacts/faults/.
"""

from __future__ import annotations

import asyncio
import collections
import random
import signal
import time
import urllib.request
from collections.abc import Callable

import pytest
import ray

from tests.faults.conftest import TOKEN, serve_env
from tests.faults.hosted import host_processes
from tests.faults.killer import kill_randomly
from tests.faults.ledger import Ledger, live_actor_names
from tests.faults.load import Load
from tests.faults.mariadb import PrivateMariaDB
from tests.faults.scenarios import PLACEMENTS, chats, conclude, load_until, named
from tests.llm_server import Behaviour, FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.ray, pytest.mark.timeout(900)]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


KILLS = 20  # at least this many actors die in scenario 1


async def test_1_random_kills_of_conversation_actors(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM
) -> None:
    # Clients wait up to a minute for a chat whose actor keeps dying (their own timeout is 90 s).
    env = serve_env(ray_session, fault_db, fault_llm, ACTIVATION_WAIT_SECONDS="60")
    ids, ledger = chats("kill", 60), Ledger()
    killed: list[str] = []
    with ServeProcess(env) as serve:
        async with Load(serve.url, TOKEN, "kills", ledger) as load:
            stop = asyncio.Event()
            killer = asyncio.create_task(
                kill_randomly(env["RAY_NAMESPACE"], stop, every=0.25, full=60, killed=killed)
            )
            acks = await load_until(load, ids, lambda: len(killed) >= KILLS, rounds=10)
            stop.set()
            await killer
        turns = sum(acks)
        verdict = await conclude(
            "1. ray.kill of random actors",
            ledger,
            fault_db,
            env["RAY_NAMESPACE"],
            **{"actors killed": len(killed), "chats killed": len(set(killed))},
        )
    assert len(set(acks)) == 1 and acks[0] >= 9 and verdict.acknowledged == turns
    assert len(killed) >= KILLS
    # A dead actor is re-activated within ACTIVATION_WAIT_SECONDS: clients see latency, not errors.
    assert verdict.errors == {} and verdict.sent == turns, verdict.messages.most_common(5)


async def watch_readiness(url: str, seen: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        seen.append(await asyncio.to_thread(status, f"{url}/readyz"))
        await asyncio.sleep(0.3)


def residents(namespace: str) -> set[str]:
    """The deployment's conversation actors, and its hosts by process: none may die of the database."""
    return set(live_actor_names(namespace)) | host_processes(namespace)


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_2_mariadb_stopped_mid_load_and_started_again(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM, placement: str
) -> None:
    env = serve_env(ray_session, fault_db, fault_llm, placement)
    ids, ledger = chats("dbdown", 20), Ledger()
    with ServeProcess(env) as serve:
        async with Load(serve.url, TOKEN, "dbdown", ledger) as load:
            # Paced so that the load outlasts the outage on a fast machine as on a slow one.
            work = asyncio.create_task(load.run(ids, acks=12, within=300, concurrency=20, pause=1.0))
            await ledger.until_acknowledged(2 * len(ids))
            before = await asyncio.to_thread(residents, env["RAY_NAMESPACE"])
            seen: list[int] = []
            stop = asyncio.Event()
            watcher = asyncio.create_task(watch_readiness(serve.url, seen, stop))
            await asyncio.to_thread(fault_db.stop, signal.SIGKILL)  # a crash, not a clean shutdown
            down_at = time.monotonic()
            await asyncio.sleep(6)
            await asyncio.to_thread(fault_db.start)
            outage = time.monotonic() - down_at
            acks = await work
            stop.set()
            await watcher
        after = await asyncio.to_thread(residents, env["RAY_NAMESPACE"])
        assert serve.proc is not None and serve.proc.poll() is None, "serve died with the database"
        verdict = await conclude(
            named(2, "MariaDB killed and restarted", placement),
            ledger,
            fault_db,
            env["RAY_NAMESPACE"],
            **{"outage s": round(outage, 1), "actors lost": len(before - after)},
        )
    assert acks == [12] * 20
    assert 503 in seen and seen[-1] == 200, seen  # readiness went false, and came back by itself
    assert before <= after, "conversation actors or hosts died while the database was down"
    assert verdict.errors.get("503", 0) > 0


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_3_serve_sigkilled_mid_stream_and_restarted(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM, placement: str
) -> None:
    fault_llm.behaviour = Behaviour(ttft=1.0, token_delay=0.02)
    env = serve_env(ray_session, fault_db, fault_llm, placement, TURN_TIMEOUT_SECONDS="5")
    ids, ledger = chats("sigkill", 20), Ledger()
    first = ServeProcess(env).start()
    env |= {"WEB_SERVER_PORT": str(first.web_port), "GRPC_SERVER_PORT": str(first.grpc_port)}
    async with Load(first.url, TOKEN, "sigkill", ledger) as load:
        warm = await load.run(ids, acks=1, within=300, concurrency=20)  # every chat activated
        work = asyncio.create_task(load.run(ids, acks=8, within=300, concurrency=20))
        await asyncio.sleep(3)
        in_flight = sum(1 for r in fault_llm.records if not r.finished)
        first.kill()  # SIGKILL: no shutdown path at all
        second = await asyncio.to_thread(ServeProcess(env).start)
        try:
            acks = await work
        finally:
            second.stop()
    verdict = await conclude(
        named(3, "serve SIGKILLed and restarted", placement),
        ledger,
        fault_db,
        env["RAY_NAMESPACE"],
        **{"streams cut": in_flight},
    )
    assert warm == [1] * 20 and acks == [8] * 20
    assert in_flight > 0 and verdict.errors.get("connection lost", 0) > 0


def counted_live(namespace: str, cap: int, above: list[tuple[int, int]]) -> int:
    """Live conversation actors by Ray's registry; above the cap, how many of those names still
    resolve to an actor (a name can outlive its killed actor in the listing for a moment)."""
    names = live_actor_names(namespace)
    if len(names) > cap:
        above.append((len(names), sum(1 for n in names if resolves(n, namespace))))
    return len(names)


def resolves(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace)
    except ValueError:
        return False
    return True


async def sample(probe: Callable[[], int], every: float, samples: list[int], stop: asyncio.Event) -> None:
    """Run the blocking `probe` every `every` seconds until `stop`, keeping what it counted.

    A probe that fails (Ray's registry or MariaDB slow to answer on a loaded machine) is skipped
    and said: the samples measure the system, they are not the system under test.
    """
    while not stop.is_set():
        try:
            samples.append(await asyncio.to_thread(probe))
        except Exception as exc:  # any failure of a measurement
            print(f"a sample failed: {type(exc).__name__}: {exc}")
        await asyncio.sleep(every)


class AboveCap(AssertionError):
    """Ray's registry listed more conversation actors than the cap."""


CHATS, CAP = 300, 20  # each activation a Ray worker process start: 1,000 chats took 11 min of CI


@pytest.mark.timeout(1200)
@pytest.mark.xfail(
    raises=AboveCap,
    reason="open: one CI run saw 21 names in Ray's registry against the cap of 20 (every turn "
    "acknowledged), not seen since; the sample now also records how many of the names still "
    "resolve to an actor, to tell a killed actor's name lingering in the listing from a real 21st",
    strict=False,
)
async def test_4_many_chats_through_twenty_live_actors(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM
) -> None:
    # A database user of its own, so this deployment's connections can be told from the others'.
    fault_db.sql("CREATE USER IF NOT EXISTS 'many'@'%' IDENTIFIED BY 'many'")
    fault_db.sql("GRANT ALL PRIVILEGES ON chatservice.* TO 'many'@'%'")
    env = serve_env(ray_session, fault_db, fault_llm, MAX_LIVE_CHATS=str(CAP), ACTIVATION_WAIT_SECONDS="60")
    env["DATABASE_URL"] = f"mysql://many:many@127.0.0.1:{fault_db.port}/chatservice"
    namespace = env["RAY_NAMESPACE"]
    processes = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'many'"
    ids, ledger = chats("many", CHATS), Ledger()
    revisits = random.Random(4).sample(ids, CHATS // 10)
    samples: list[int] = []
    above: list[tuple[int, int]] = []
    connections: list[int] = []
    with ServeProcess(env) as serve:
        async with Load(serve.url, TOKEN, "many", ledger) as load:
            stop = asyncio.Event()
            monitors = [
                asyncio.create_task(sample(lambda: counted_live(namespace, CAP, above), 0.1, samples, stop)),
                asyncio.create_task(sample(lambda: int(fault_db.sql(processes)), 1.0, connections, stop)),
            ]
            first = await load.run(ids, acks=1, within=900, concurrency=24)
            again = await load.run(revisits, acks=1, within=300, concurrency=24)
            stop.set()
            await asyncio.gather(*monitors)
        await conclude(
            f"4. {CHATS:,} chats, MAX_LIVE_CHATS={CAP}",
            ledger,
            fault_db,
            env["RAY_NAMESPACE"],
            **{
                "most live actors seen": max(samples),
                "above the cap (listed/resolving)": ", ".join(f"{a}/{b}" for a, b in above) or "never",
                "most database connections": max(connections),
            },
        )
    assert first == [1] * CHATS and again == [1] * len(revisits)
    # One connection per live actor, and the gateway's pool (DB_POOL_SIZE 4).
    assert max(connections) <= CAP + 4, f"database connections: {max(connections)}"
    if max(samples) > CAP:
        raise AboveCap(f"live actors listed above the cap: {max(samples)}; (listed, resolving): {above}")


def llm_weather(started: float) -> Callable[[], int | str | None]:
    """Calm, then a 429 storm, a 500 storm, hanging requests and streams cut mid-answer, then calm."""
    rng = random.Random(5)

    def fate() -> int | str | None:
        t = time.monotonic() - started
        if 2 <= t < 5:
            return 429
        if 6 <= t < 9:
            return 500
        if 10 <= t < 14:
            return "hang"
        if 15 <= t < 19:
            return "cut:2" if rng.random() < 0.7 else None
        return None

    return fate


async def test_5_the_llm_rate_limits_fails_hangs_and_cuts_streams(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM
) -> None:
    env = serve_env(ray_session, fault_db, fault_llm, LLM_TIMEOUT_SECONDS="1")
    ids, ledger = chats("llm", 30), Ledger()
    with ServeProcess(env) as serve:
        async with Load(serve.url, TOKEN, "llm", ledger) as load:
            warm = await load.run(ids, acks=1, within=300, concurrency=30)  # every chat activated
            fault_llm.behaviour = Behaviour(token_delay=0.01, chaos=llm_weather(time.monotonic()))
            acks = await load.run(ids, acks=10, within=300, concurrency=30, pause=0.3)
        fates = collections.Counter(str(r.fate).split(":")[0] for r in fault_llm.records if r.fate)
        verdict = await conclude(
            "5. LLM 429s, 500s, hangs, cut streams",
            ledger,
            fault_db,
            env["RAY_NAMESPACE"],
            **{"LLM failures served": ", ".join(f"{k}: {n}" for k, n in sorted(fates.items()))},
        )
    assert warm == [1] * 30 and acks == [10] * 30
    assert set(fates) == {"429", "500", "hang", "cut"}, fates
    assert {"429", "503"} <= set(verdict.errors), verdict.errors
