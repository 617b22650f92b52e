"""Scenario 1h: `chatservice serve` in the hosted placement while its hosts' processes are SIGKILLed.

Scenario 1's load and checks (tests/faults/test_faults.py), with the chats living as objects in
three `host:<n>` actors: each kill takes a third of the chats down at once, until Ray restarts the
host under its name and the gateway's retries reach it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import TOKEN, serve_env
from tests.faults.hosted import HostKill, kill_hosts
from tests.faults.ledger import Ledger
from tests.faults.load import Load
from tests.faults.mariadb import PrivateMariaDB
from tests.faults.scenarios import chats, conclude, load_until, named
from tests.llm_server import Behaviour, FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.ray, pytest.mark.timeout(900)]

HOST_KILLS = 6  # at least this many host processes die
EVERY = 3.0  # seconds from a killed host's restart answering to the next kill


def streaming(llm: FakeLLM) -> int:
    return sum(1 for r in llm.records if not r.finished)


async def test_1h_host_processes_sigkilled_under_load(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM
) -> None:
    # Answers that take a moment, so that a kill finds turns begun and not yet completed: the
    # restarted host must take them over. As in scenario 1, clients wait up to a minute.
    fault_llm.behaviour = Behaviour(ttft=0.3)
    env = serve_env(ray_session, fault_db, fault_llm, "hosted", ACTIVATION_WAIT_SECONDS="60")
    ids, ledger = chats("hostkill", 60), Ledger()
    kills: list[HostKill] = []
    with ServeProcess(env) as serve:
        async with Load(serve.url, TOKEN, "hostkills", ledger) as load:
            stop = asyncio.Event()
            killer = asyncio.create_task(
                kill_hosts(env["RAY_NAMESPACE"], stop, EVERY, kills, lambda: streaming(fault_llm))
            )
            # Hosted turns are quick: more turns per chat until HOST_KILLS hosts have died.
            acks = await load_until(load, ids, lambda: len(kills) >= HOST_KILLS or killer.done(), rounds=60)
            stop.set()
            await killer
        turns = sum(acks)
        verdict = await conclude(
            named(1, "host processes SIGKILLed", "hosted"),
            ledger,
            fault_db,
            env["RAY_NAMESPACE"],
            **{
                "hosts killed": len(kills),
                "answers streaming at the kills": sum(k.streams for k in kills),
                "slowest host restart s": round(max((k.restart_seconds for k in kills), default=0), 1),
            },
        )
    assert len(set(acks)) == 1 and acks[0] >= 9 and verdict.acknowledged == turns
    assert len(kills) >= HOST_KILLS and all(k.streams > 0 for k in kills)
    assert verdict.windows_compared > 0  # the hosts' windows were read, not skipped
    # A restarting host is retried for ACTIVATION_WAIT_SECONDS: clients see latency, not errors.
    assert verdict.errors == {} and verdict.sent == turns, verdict.messages.most_common(5)
