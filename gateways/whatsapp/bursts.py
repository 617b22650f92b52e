"""Bursts of short messages, answered as one turn: a per-sender debounce.

People send "hi", "one question", "what is the capital of Brazil?" in a row. Each message from a
sender restarts a quiet timer (WHATSAPP_DEBOUNCE_MS); when it runs out the burst, every message in
arrival order, is handed over once. A burst also ends at MAX_BURST messages, or after the quiet
time four times over since its first message (a sender who never pauses is still answered). A
sender's bursts never overlap: messages that arrive while their previous burst is being answered
wait for it, then form the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_BURST = 20
LONGEST_FACTOR = 4  # a burst is answered at most this many quiet times after its first message
log = logging.getLogger("chatservice.whatsapp.bursts")


@dataclass
class _Sender(Generic[T]):
    pending: list[T] = field(default_factory=list)
    started: float = 0.0
    timer: asyncio.TimerHandle | None = None
    answering: asyncio.Task[None] | None = None  # the burst being answered, the next waits for it


class Bursts(Generic[T]):
    """Collects messages per sender and calls `answer(sender, burst)` once per burst, in order."""

    def __init__(self, quiet_seconds: float, answer: Callable[[str, list[T]], Awaitable[None]]) -> None:
        self._quiet = quiet_seconds
        self._answer = answer
        self._senders: dict[str, _Sender[T]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def add(self, sender: str, item: T) -> None:
        """Take one message; it is answered with the others of its burst."""
        loop = asyncio.get_running_loop()
        state = self._senders.setdefault(sender, _Sender())
        if not state.pending:
            state.started = loop.time()
        state.pending.append(item)
        if state.timer is not None:
            state.timer.cancel()
        longest = state.started + self._quiet * LONGEST_FACTOR
        if len(state.pending) >= MAX_BURST or loop.time() >= longest:
            self._flush(sender)
        else:
            state.timer = loop.call_at(min(loop.time() + self._quiet, longest), self._flush, sender)

    def _flush(self, sender: str) -> None:
        state = self._senders[sender]
        burst, state.pending, state.timer = state.pending, [], None
        if burst:
            task = asyncio.ensure_future(self._after(state.answering, sender, burst))
            state.answering = task
            self._running.add(task)
            task.add_done_callback(lambda t: self._done(sender, t))

    async def _after(self, previous: asyncio.Task[None] | None, sender: str, burst: list[T]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self._answer(sender, burst)

    def _done(self, sender: str, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("answering a WhatsApp burst failed", exc_info=task.exception())
        state = self._senders.get(sender)
        if state is not None and state.answering is task and not state.pending:
            del self._senders[sender]  # nothing left of this sender: forget them

    async def close(self) -> None:
        """Answer every burst still gathering now, and wait for all of them."""
        for sender in list(self._senders):
            state = self._senders[sender]
            if state.timer is not None:
                state.timer.cancel()
            self._flush(sender)
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    @property
    def senders(self) -> int:
        """Senders with messages gathering or being answered (bounded by who wrote recently)."""
        return len(self._senders)
