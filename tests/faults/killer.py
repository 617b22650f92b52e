"""Scenario 1's killer: random conversation actors killed at a steady rate per live actor."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import ray

from actors.directory import actor_id
from tests.faults.ledger import live_actor_names

TICK = 0.25  # seconds between two looks at the live actors
IN_FLIGHT = 3  # killed actors whose chats may be re-activating at once
GIVE_UP = 30.0  # seconds to wait for a replacement: the chat may have no turns left to send


@dataclass
class Killed:
    """A killed activation, until its chat has a new actor that answers (or GIVE_UP passes)."""

    name: str
    actor_id: str
    until: float
    ping: Any = None  # a call to the replacement, once there is one


async def recovered(killed: Killed, namespace: str) -> bool:
    if time.monotonic() > killed.until:
        return True
    if killed.ping is None:
        try:
            handle = await asyncio.to_thread(ray.get_actor, killed.name, namespace)
        except ValueError:
            return False
        if actor_id(handle) == killed.actor_id:
            return False
        killed.ping = handle.window_messages.remote()
    done, _ = await asyncio.to_thread(ray.wait, [killed.ping], timeout=0)
    return bool(done)


async def kill_randomly(
    namespace: str, stop: asyncio.Event, every: float, full: int, killed: list[str]
) -> None:
    """ray.kill random live conversation actors of the deployment: one every `every` seconds
    while `full` of them are live, proportionally fewer while fewer are; each killed actor's
    name is appended to `killed` as it dies.

    Each live actor keeps the same chance of dying per second, to the last chat still talking: at
    each tick one is killed with probability (live actors) x tick / (every x full). A fixed overall
    rate would pour every kill onto the last few chats, faster than a loaded node starts actors.

    Kills also wait while IN_FLIGHT killed chats have no answering replacement yet. Ray starts at
    most as many worker processes at once as the node has CPUs (two here), each a second or more of
    a loaded core: at four kills a second, and at one a second with the machine loaded twice over,
    deaths outran starts, the activations queued, and a chat still had no live actor after the
    60 s a client waits. The scenario is about actors that die, not about a node that cannot
    start them as fast as they are killed: the rate adapts to how fast this node restarts them.
    """
    rng = random.Random(7)
    per_actor = TICK / (every * full)
    pending: list[Killed] = []
    while not stop.is_set():
        names = await asyncio.to_thread(live_actor_names, namespace)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK)
        pending = [k for k in pending if not await recovered(k, namespace)]
        if stop.is_set() or len(pending) >= IN_FLIGHT or not names:
            continue
        if rng.random() >= len(names) * per_actor:
            continue
        name = rng.choice(names)
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, namespace)
        except ValueError:
            continue
        ray.kill(actor, no_restart=True)
        pending.append(Killed(name, actor_id(actor), time.monotonic() + GIVE_UP))
        killed.append(name)
