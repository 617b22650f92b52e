"""The hosted placement in the fault suite: its hosts listed, read, SIGKILLed and ended."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from store.records import MessageRecord

RESTART_WAIT = 60.0  # seconds a killed host has to answer again before the scenario fails
CALL_WAIT = 5.0  # seconds one look at a host may take (a restarting host may not answer at all)
# What a call to a host raises while it is dead or restarting.
HOST_GONE = (ValueError, RayActorError, RayTaskError, ActorUnavailableError, GetTimeoutError, TimeoutError)


def live_host_names(namespace: str) -> list[str]:
    """Names of the conversation hosts of one deployment (Ray's registry of named actors)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in named if a["namespace"] == namespace and a["name"].startswith("host:"))


def host_processes(namespace: str) -> set[str]:
    """Each host as `name pid`: a host that died and was restarted reads differently afterwards."""
    found = set()
    for name in live_host_names(namespace):
        stats = ray.get(ray.get_actor(name, namespace).stats.remote(), timeout=CALL_WAIT)
        found.add(f"{name} pid {stats['pid']}")
    return found


async def host_windows(namespace: str, chat_ids: Iterable[str]) -> list[tuple[str, list[MessageRecord]]]:
    """Each chat's window as its host holds it in memory, for the chats some host holds."""
    chats = sorted(set(chat_ids))
    windows = []
    for name in await asyncio.to_thread(live_host_names, namespace):
        try:
            host = await asyncio.to_thread(ray.get_actor, name, namespace)
            held = [c for c in chats if await host.holds.remote(c)]
            windows += [(c, await host.call.remote("window_messages", c)) for c in held]
        except HOST_GONE:
            continue  # died since it was listed: nothing in memory to compare
    return windows


@dataclass
class HostKill:
    """One host process SIGKILLed, and how long until Ray's restart of it answered."""

    host: str
    pid: int
    streams: int  # answers streaming, in all hosts' chats, as it died
    restart_seconds: float


async def kill_hosts(
    namespace: str, stop: asyncio.Event, every: float, kills: list[HostKill], streaming: Callable[[], int]
) -> None:
    """SIGKILL a random host's process every `every` seconds until `stop`, as the OOM killer would;
    each kill waits until the restarted host answers before the next is due, so that every kill
    lands on a serving host rather than on one still starting, and only while answers are being
    streamed (`streaming` counts them)."""
    rng = random.Random(11)
    while not stop.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        names = await asyncio.to_thread(live_host_names, namespace)
        # Only mid-answer: between two rounds of the load (or after it) a kill would test nothing.
        if stop.is_set() or not names or not streaming():
            continue
        name = rng.choice(names)
        host = await asyncio.to_thread(ray.get_actor, name, namespace)
        pid = int((await asyncio.wait_for(host.stats.remote(), CALL_WAIT))["pid"])
        streams = streaming()
        if not streams:  # the answers ended while the host was looked up
            continue
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await answers_again(host, pid)
        kills.append(HostKill(name, pid, streams, time.monotonic() - killed_at))


async def answers_again(host: Any, old_pid: int) -> None:
    """Return once the host answers from a process other than `old_pid`."""
    deadline = time.monotonic() + RESTART_WAIT
    while time.monotonic() < deadline:
        with suppress(*HOST_GONE):
            stats = await asyncio.wait_for(host.stats.remote(), CALL_WAIT)
            if stats["pid"] != old_pid:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the host killed as pid {old_pid} did not answer again in {RESTART_WAIT} s")


def end_hosts(prefix: str) -> None:
    """Kill for good the hosts of every deployment whose namespace begins with `prefix`."""
    named = ray.util.list_named_actors(all_namespaces=True)
    for actor in named:
        if actor["namespace"].startswith(prefix) and actor["name"].startswith("host:"):
            with suppress(ValueError):
                ray.kill(ray.get_actor(actor["name"], actor["namespace"]), no_restart=True)
