"""Deltas coalesced towards a client: the first at once, bursts joined, nothing held back or lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import pytest

from gateways.llm.client import Delta, Finish
from gateways.service.coalesce import Coalescing, coalesced
from store.errors import StreamBroken

Event = Delta | Finish
STOP = Finish("stop")


async def burst(*texts: str, end: Event | None = STOP) -> AsyncGenerator[Event, None]:
    for text in texts:
        yield Delta(text)
    if end is not None:
        yield end


async def collect(source: AsyncIterator[Event], rule: Coalescing) -> list[Event]:
    return [e async for e in coalesced(source, rule)]


async def test_the_first_delta_goes_alone_and_a_burst_after_it_is_one_write() -> None:
    got = await collect(burst("a", "b", "c", "d"), Coalescing(seconds=5.0))
    assert got == [Delta("a"), Delta("bcd"), Finish("stop")]


async def test_a_held_delta_goes_out_when_the_interval_passes_with_nothing_after_it() -> None:
    release = asyncio.Event()

    async def stalls() -> AsyncGenerator[Event, None]:
        yield Delta("a")
        yield Delta("b")
        await release.wait()  # the LLM pauses: "b" must not wait for it
        yield Finish("stop")

    got: list[Event] = []
    async with aclosing(coalesced(stalls(), Coalescing(seconds=0.05))) as stream:
        async for event in stream:
            got.append(event)
            if event == Delta("b"):
                release.set()
    assert got == [Delta("a"), Delta("b"), Finish("stop")]


async def test_enough_waiting_deltas_go_out_before_the_interval() -> None:
    got = await collect(burst(*"abcdefg"), Coalescing(seconds=60.0, most=3))
    assert got == [Delta("a"), Delta("bcd"), Delta("efg"), Finish("stop")]


async def test_held_text_reaches_the_client_before_the_error_that_ends_the_stream() -> None:
    async def breaks() -> AsyncGenerator[Event, None]:
        yield Delta("a")
        yield Delta("b")
        raise StreamBroken("the server went away")

    got: list[Event] = []

    async def read() -> None:
        async for event in coalesced(breaks(), Coalescing(seconds=60.0)):
            got.append(event)

    with pytest.raises(StreamBroken):
        await read()
    assert got == [Delta("a"), Delta("b")]


async def test_a_client_that_leaves_closes_the_llm_stream() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[Event, None]:
        try:
            while True:
                yield Delta("x")
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    async with aclosing(coalesced(endless(), Coalescing(seconds=0.01))) as stream:
        async for _ in stream:
            break
    assert closed.is_set()


async def test_zero_ms_passes_every_delta_as_it_comes() -> None:
    assert await collect(burst("a", "b", end=None), Coalescing(seconds=0.0)) == [Delta("a"), Delta("b")]
