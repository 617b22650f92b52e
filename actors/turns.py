"""One turn at a time per chat, in arrival order, under a lease; outcomes remembered for retries."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from actors.protocol import TurnPlan, TurnResult
from store.errors import FailedPrecondition

REMEMBERED_TURNS = 64
WITHDRAWN = "was withdrawn (its client left before it began)"


class TurnSlot:
    """The chat's turn slot: acquire, hold a turn under a lease, finish it with an outcome.

    asyncio.Lock wakes waiters in arrival order, so turns run FIFO. A held turn whose lease
    runs out (its gateway vanished) is finished as expired and the slot passes on. The last
    outcomes are kept so that a retried complete/abort gets the same answer, not a second write.
    """

    def __init__(self, lease_seconds: float, on_change: Callable[[], None] = lambda: None) -> None:
        self._lease_seconds = lease_seconds
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self.current: TurnPlan | None = None
        self._lease: asyncio.TimerHandle | None = None
        # A finished turn's result, or why it ended without one (lease expired, stale state).
        self._outcomes: OrderedDict[str, TurnResult | str] = OrderedDict()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def acquire(self) -> None:
        await self._lock.acquire()

    def release(self) -> None:
        """Give the slot back without a turn (its start failed, or a chat operation is done)."""
        self._lock.release()
        self._on_change()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def hold(self, plan: TurnPlan) -> None:
        """The slot, already acquired, now holds this turn until it finishes or its lease expires."""
        self.current = plan
        self._arm(plan.turn_id)

    def renew(self, turn_id: str) -> bool:
        """Restart the held turn's lease (its gateway is still at work); False if it is not held."""
        if not self.holds(turn_id):
            return False
        self._arm(turn_id)
        return True

    def _arm(self, turn_id: str) -> None:
        if self._lease is not None:
            self._lease.cancel()
        self._lease = asyncio.get_running_loop().call_later(self._lease_seconds, self._expire, turn_id)

    def holds(self, turn_id: str) -> bool:
        return self.current is not None and self.current.turn_id == turn_id

    def finished(self, turn_id: str) -> bool:
        return turn_id in self._outcomes

    def outcome(self, turn_id: str) -> TurnResult:
        """The remembered result of a finished turn; FailedPrecondition if it ended without one."""
        done = self._outcomes[turn_id]
        if isinstance(done, str):
            raise FailedPrecondition(f"turn {turn_id!r} {done}; its answer was not stored")
        return done

    def finish(self, turn_id: str, outcome: TurnResult | str) -> None:
        """End the held turn with its result (or the reason it has none) and free the slot."""
        if self._lease is not None:
            self._lease.cancel()
        self.current, self._lease = None, None
        self.remember(turn_id, outcome)
        self.release()

    def remember(self, turn_id: str, outcome: TurnResult | str) -> None:
        """Record how a turn ended (also one that never held the slot), for its retries."""
        self._outcomes[turn_id] = outcome
        while len(self._outcomes) > REMEMBERED_TURNS:
            self._outcomes.popitem(last=False)

    def _expire(self, turn_id: str) -> None:
        if self.holds(turn_id):
            self.finish(turn_id, "expired (its gateway did not finish it in time)")
