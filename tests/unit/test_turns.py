"""The turn slot: FIFO turns, leases that free an abandoned chat, remembered outcomes."""

from __future__ import annotations

import asyncio

import pytest

from actors.protocol import TurnPlan, TurnResult, WindowInfo
from actors.turns import REMEMBERED_TURNS, TurnSlot
from store.errors import FailedPrecondition
from store.records import ChatParams

WINDOW = WindowInfo(1, 10, 100)


def plan(turn_id: str) -> TurnPlan:
    return TurnPlan(turn_id, "c", False, 1, (), ChatParams("m", 100, 10), 0, WINDOW)


def result(turn_id: str) -> TurnResult:
    return TurnResult(turn_id, 2, None, "stop", WINDOW)


async def test_turns_take_the_slot_in_arrival_order() -> None:
    slot = TurnSlot(60)
    order: list[str] = []

    async def run(name: str) -> None:
        await slot.acquire()
        slot.hold(plan(name))
        order.append(name)
        await asyncio.sleep(0)
        slot.finish(name, result(name))

    await asyncio.gather(*(run(n) for n in "abcde"))
    assert order == list("abcde")
    assert not slot.busy


async def test_a_lease_that_runs_out_frees_the_slot_and_the_turn_has_no_answer() -> None:
    changes: list[bool] = []
    slot = TurnSlot(0.05, on_change=lambda: changes.append(True))
    await slot.acquire()
    slot.hold(plan("t1"))
    await asyncio.wait_for(slot.acquire(), 2)  # the lease expires and the next turn gets in
    assert slot.finished("t1") and not slot.holds("t1")
    with pytest.raises(FailedPrecondition, match="expired"):
        slot.outcome("t1")
    assert changes == [True]


async def test_outcomes_are_remembered_for_retries_within_a_bound() -> None:
    slot = TurnSlot(60)
    for i in range(REMEMBERED_TURNS + 1):
        await slot.acquire()
        slot.hold(plan(f"t{i}"))
        slot.finish(f"t{i}", result(f"t{i}"))
    assert slot.outcome(f"t{REMEMBERED_TURNS}").assistant_message_id == 2
    assert not slot.finished("t0")


async def test_a_renewed_lease_keeps_the_turn_and_an_unrenewed_one_runs_out() -> None:
    slot = TurnSlot(0.6)
    await slot.acquire()
    slot.hold(plan("t1"))
    for _ in range(8):  # twice the lease in all, renewed every quarter of it
        await asyncio.sleep(0.15)
        assert slot.renew("t1")
    assert slot.holds("t1")
    await asyncio.wait_for(slot.acquire(), 2)  # not renewed any more: it expires
    assert not slot.renew("t1")
    with pytest.raises(FailedPrecondition, match="expired"):
        slot.outcome("t1")


def test_an_outcome_can_be_remembered_for_a_turn_that_never_held_the_slot() -> None:
    slot = TurnSlot(60)
    slot.remember("early", "was withdrawn")
    assert slot.finished("early") and not slot.busy
    with pytest.raises(FailedPrecondition, match="withdrawn"):
        slot.outcome("early")
