"""Deltas towards a client, coalesced: the first at once, then at most one write per interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from gateways.llm.client import Delta

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Coalescing:
    """At most one write per `seconds` (0: every delta its own write), or sooner once `most` wait."""

    seconds: float = 0.025
    most: int = 32


class _End:
    """The source is exhausted."""


class _Flush:
    """Held text is due."""


_FLUSH = _Flush()


@dataclass(frozen=True, slots=True)
class _Raised:
    error: BaseException


async def coalesced(source: AsyncIterator[T], rule: Coalescing) -> AsyncGenerator[T | Delta, None]:
    """`source`'s events, its Deltas joined so that a client gets one write per `rule.seconds`.

    The first delta is never held; a held delta goes out when the interval has passed even if no
    other one follows (a reader task feeds a queue), before any other event, and before an error,
    so whatever the client got is what the turn stores.
    """
    if rule.seconds <= 0:
        async for passed in source:
            yield passed
        return
    queue: asyncio.Queue[T | _End | _Raised | _Flush] = asyncio.Queue()
    reader = asyncio.get_running_loop().create_task(_read(source, queue))
    try:
        async for event in _joined(queue, rule):
            yield event
    finally:
        reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


async def _read(source: AsyncIterator[T], queue: asyncio.Queue[T | _End | _Raised | _Flush]) -> None:
    try:
        async for event in source:
            queue.put_nowait(event)
    except Exception as exc:
        queue.put_nowait(_Raised(exc))
    else:
        queue.put_nowait(_End())


async def _joined(
    queue: asyncio.Queue[T | _End | _Raised | _Flush], rule: Coalescing
) -> AsyncGenerator[T | Delta, None]:
    loop = asyncio.get_running_loop()
    held: list[str] = []
    due = 0.0  # when held text must go out; the first delta finds it passed
    # One timer per held stretch, queueing _FLUSH: cheaper than a timeout on every get.
    timer: asyncio.TimerHandle | None = None
    try:
        while True:
            event = await queue.get()
            if isinstance(event, Delta):
                held.append(event.text)
                now = loop.time()
                if now < due and len(held) < rule.most:
                    timer = timer or loop.call_later(due - now, queue.put_nowait, _FLUSH)
                    continue
            if timer is not None:
                timer.cancel()  # harmless if it fired: a stale _FLUSH only sends held text early
                timer = None
            if held:
                yield Delta("".join(held))
                held, due = [], loop.time() + rule.seconds
            if isinstance(event, _End):
                return
            if isinstance(event, _Raised):
                raise event.error
            if not isinstance(event, Delta | _Flush):
                yield event
    finally:
        if timer is not None:
            timer.cancel()
