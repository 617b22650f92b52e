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
    queue: asyncio.Queue[T | _End | _Raised] = asyncio.Queue()
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


async def _read(source: AsyncIterator[T], queue: asyncio.Queue[T | _End | _Raised]) -> None:
    try:
        async for event in source:
            queue.put_nowait(event)
    except Exception as exc:
        queue.put_nowait(_Raised(exc))
    else:
        queue.put_nowait(_End())


async def _joined(
    queue: asyncio.Queue[T | _End | _Raised], rule: Coalescing
) -> AsyncGenerator[T | Delta, None]:
    loop = asyncio.get_running_loop()
    held: list[str] = []
    due = 0.0  # when held text must go out; the first delta finds it passed
    while True:
        if not held:
            event = await queue.get()
        else:
            try:
                event = await asyncio.wait_for(queue.get(), max(0.0, due - loop.time()))
            except TimeoutError:
                yield Delta("".join(held))
                held, due = [], loop.time() + rule.seconds
                continue
        if isinstance(event, Delta):
            held.append(event.text)
            if loop.time() >= due or len(held) >= rule.most:
                yield Delta("".join(held))
                held, due = [], loop.time() + rule.seconds
            continue
        if held:
            yield Delta("".join(held))
            held = []
        if isinstance(event, _End):
            return
        if isinstance(event, _Raised):
            raise event.error
        yield event
