"""Bursts: one sender's messages within the quiet time are answered once, in order; senders apart."""

from __future__ import annotations

import asyncio

from gateways.whatsapp.bursts import MAX_BURST, Bursts


class Answers:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()
        self._changed = asyncio.Condition()

    async def __call__(self, sender: str, burst: list[str]) -> None:
        async with self._changed:
            self.calls.append((sender, burst))
            self._changed.notify_all()
        self.started.set()
        await self.release.wait()

    async def count(self, n: int) -> None:
        """Wait (10 s at most) until `n` bursts have been handed over."""
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= n)


async def test_three_messages_in_a_row_are_one_burst_in_order() -> None:
    answers = Answers()
    bursts = Bursts(0.05, answers)
    for text in ("oi", "uma pergunta", "qual é a capital do Brasil?"):
        bursts.add("ana", text)
    await answers.count(1)
    await bursts.close()
    assert answers.calls == [("ana", ["oi", "uma pergunta", "qual é a capital do Brasil?"])]
    assert bursts.senders == 0


async def test_senders_are_answered_apart() -> None:
    answers = Answers()
    bursts = Bursts(0.05, answers)
    bursts.add("ana", "a1")
    bursts.add("bia", "b1")
    bursts.add("ana", "a2")
    await answers.count(2)
    await bursts.close()
    assert sorted(answers.calls) == [("ana", ["a1", "a2"]), ("bia", ["b1"])]


async def test_messages_during_an_answer_form_the_next_burst_after_it() -> None:
    answers = Answers()
    answers.release.clear()  # the first answer takes a while
    bursts = Bursts(0.01, answers)
    bursts.add("ana", "first")
    await answers.started.wait()
    bursts.add("ana", "second")
    bursts.add("ana", "third")
    await asyncio.sleep(0.1)  # well past the quiet time: the next burst is due, but waits
    assert answers.calls == [("ana", ["first"])]
    answers.release.set()
    await answers.count(2)
    await bursts.close()
    assert answers.calls == [("ana", ["first"]), ("ana", ["second", "third"])]


async def test_a_burst_ends_at_its_cap_and_close_answers_what_is_gathering() -> None:
    answers = Answers()
    bursts = Bursts(3600.0, answers)  # the quiet time never runs out in this test
    for i in range(MAX_BURST + 1):
        bursts.add("ana", str(i))
    await answers.count(1)
    assert answers.calls == [("ana", [str(i) for i in range(MAX_BURST)])]
    await bursts.close()
    assert answers.calls[1] == ("ana", [str(MAX_BURST)])


async def test_a_zero_quiet_time_answers_each_message_alone_in_order() -> None:
    answers = Answers()
    bursts = Bursts(0.0, answers)
    for text in ("a", "b", "c"):
        bursts.add("ana", text)
    await bursts.close()
    assert answers.calls == [("ana", ["a"]), ("ana", ["b"]), ("ana", ["c"])]


async def test_a_failed_answer_does_not_stop_the_next_burst() -> None:
    calls: list[list[str]] = []

    async def flaky(sender: str, burst: list[str]) -> None:
        calls.append(burst)
        if len(calls) == 1:
            raise RuntimeError("LLM down")

    bursts = Bursts(0.0, flaky)
    bursts.add("ana", "a")
    bursts.add("ana", "b")
    await bursts.close()
    assert calls == [["a"], ["b"]]
