"""One conversation's turn protocol over a ChatStore; the Ray actor is a thin shell on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from actors.chatops import ChatOperations
from actors.endings import TurnEndings
from actors.protocol import NewChat, Recount, Regenerate, TurnPlan, TurnRequest
from actors.ratelimit import RateLimit
from actors.state import chat_title, entry, scale_for
from actors.turns import WITHDRAWN, TurnSlot
from actors.window import Window
from store.base import ChatStore
from store.errors import (
    AlreadyExists,
    FailedPrecondition,
    ResourceExhausted,
    StaleState,
)
from store.records import ChatParams, ChatRecord, ChatStatus, MessageRecord, Role


class Conversation(ChatOperations, TurnEndings):
    """Holds a chat's window in memory and writes every change through before acknowledging it.

    Turns run one at a time in arrival order: begin_turn takes the chat's turn slot and
    complete_turn or abort_turn gives it back; a lease of `turn_timeout` seconds frees it if
    the gateway never comes back. At most `turns_per_minute` turns begin in any minute (0: no limit).
    `on_free` is called whenever the slot is given back (the actor arms its idle timer then).
    """

    def __init__(
        self,
        chat_id: str,
        store: ChatStore,
        turn_timeout: float,
        turns_per_minute: int = 0,
        clock: Callable[[], float] = time.monotonic,
        on_free: Callable[[], None] = lambda: None,
        on_activated: Callable[[float], None] = lambda seconds: None,
        evict_to: float = 1.0,
    ) -> None:
        super().__init__(chat_id, store, on_activated, evict_to)
        self._rate = RateLimit(turns_per_minute)
        self._clock = clock
        self._slot = TurnSlot(turn_timeout, on_change=on_free)
        self._arriving: dict[str, asyncio.Future[TurnPlan | Recount]] = {}  # begins not yet answered
        self._withdrawn: set[str] = set()  # of those, the ones whose client left
        self._waiting: dict[str, asyncio.Future[None]] = {}  # of those, the ones queued for the slot
        self._titled_by: str | None = None  # the held turn, if its message gave the chat its title
        self._leaf_before: tuple[str, int | None] | None = None  # a turn begun here, the leaf it left

    @property
    def busy(self) -> bool:
        return self._slot.busy

    # -- turns -----------------------------------------------------------------------------

    async def begin_turn(self, req: TurnRequest) -> TurnPlan | Recount:
        await self._ensure_loaded()
        if self._slot.holds(req.turn_id):
            assert self._slot.current is not None
            return self._slot.current  # a retried begin after a lost reply
        if self._slot.finished(req.turn_id):
            raise FailedPrecondition(f"turn {req.turn_id!r} already finished")
        arriving = self._arriving.get(req.turn_id)
        if arriving is None:  # a retry of a begin still waiting here shares its outcome
            arriving = asyncio.ensure_future(self._begin(req))
            self._arriving[req.turn_id] = arriving
            arriving.add_done_callback(lambda _: self._left(req.turn_id))
        return await asyncio.shield(arriving)

    async def _begin(self, req: TurnRequest) -> TurnPlan | Recount:
        self._check_access(req.user_id, creating=_creates(req))
        self._check_rate()
        await self._queue(req.turn_id)
        titled = self.chat is not None and not self.chat.title and not isinstance(req.branch, Regenerate)
        try:
            result = await self._start_or_reload(req)
        except BaseException as exc:
            self._slot.release()
            self._forget_if_stale(exc)
            raise
        if isinstance(result, Recount):
            self._slot.release()
            return result
        self._slot.hold(result)
        self._titled_by = req.turn_id if titled or result.created else None
        if req.turn_id in self._withdrawn:  # its client left while its message was being stored
            await self._withdraw_held(req.turn_id)
            raise FailedPrecondition(f"turn {req.turn_id!r} {WITHDRAWN}")
        return result

    async def _queue(self, turn_id: str) -> None:
        """Wait for the slot; a turn withdrawn meanwhile leaves the queue at once, storing nothing."""
        waiting = self._waiting[turn_id] = asyncio.ensure_future(self._slot.acquire())
        try:
            await waiting
        except asyncio.CancelledError:
            if not waiting.cancelled() or turn_id not in self._withdrawn:
                raise
        finally:
            del self._waiting[turn_id]
        if turn_id in self._withdrawn:
            if not waiting.cancelled():
                self._slot.release()
            raise FailedPrecondition(f"turn {turn_id!r} {WITHDRAWN}")

    def _left(self, turn_id: str) -> None:
        self._arriving.pop(turn_id, None)
        self._withdrawn.discard(turn_id)

    def _check_rate(self) -> None:
        wait = self._rate.admit(self._clock())
        if wait:
            raise ResourceExhausted(
                f"chat {self.chat_id!r} took {self._rate.limit} turns in the last minute: "
                f"wait {wait:.0f} s before the next message"
            )

    async def _start_or_reload(self, req: TurnRequest) -> TurnPlan | Recount:
        # Another activation may write first: nothing of this turn is stored then, so it goes
        # again on top of the newest state (once: a second conflict is reported).
        return await self._retry_stale(lambda: self._start(req))

    def _check_access(self, user_id: str, *, creating: bool) -> None:
        if self.chat is None and creating:
            return
        chat = self._owned(user_id)
        if chat.status is ChatStatus.ENDED:
            raise FailedPrecondition(f"chat {self.chat_id!r} has ended: start a new chat")

    async def _start(self, req: TurnRequest) -> TurnPlan | Recount:
        # Re-check after waiting: the chat may have been created, ended or reloaded meanwhile.
        self._check_access(req.user_id, creating=_creates(req))
        if self.chat is None:
            assert req.create is not None
            return await self._create(req, req.create)
        if req.counted_for != self.chat.params.model and not isinstance(req.branch, Regenerate):
            return Recount(self.chat.params.model)
        resumed = self._resume(req.turn_id)
        if resumed is not None:
            return resumed
        self._leaf_before = (req.turn_id, self.chat.active_leaf)
        if isinstance(req.branch, Regenerate):
            return await self._start_regenerate(req, req.branch, _scale(req, self.chat.params))
        parent, base, siblings = await self._base_of(req.branch)
        evict = self._plan(self._window_over(base), req.tokens, _scale(req, self.chat.params))
        self.correction = req.correction
        user = await self._send(req, parent, base, evict)
        plan = self._plan_for(req.turn_id, user.seq, evicted=len(evict), created=False)
        return replace(plan, siblings=siblings)

    async def _create(self, req: TurnRequest, new: NewChat) -> TurnPlan | Recount:
        if req.counted_for != new.params.model:
            return Recount(new.params.model)
        chat = ChatRecord(
            id=self.chat_id, user_id=req.user_id, params=new.params, title=chat_title(req.content)
        )
        first = self._opening(new)
        window = Window(new.params.context_tokens, new.params.max_tokens)
        window.apply(add=[entry(m) for m in first])
        self._plan(window, req.tokens, _scale(req, new.params))
        self.correction = req.correction
        user = MessageRecord(
            self.chat_id, len(first) + 1, Role.USER, req.content, req.tokens, turn_id=req.turn_id
        )
        user = replace(user, parent_seq=first[-1].seq if first else None)  # the chain the store keeps
        chat = replace(chat, active_leaf=user.seq)
        try:
            await self._store.create_chat(chat, [*first, user])
        except AlreadyExists:
            await self.load()  # another activation created it first: continue as theirs
            return await self._start(replace(req, create=None))
        self._set_state(chat, [*first, user])
        self._last_seq = user.seq
        return self._plan_for(req.turn_id, user.seq, evicted=0, created=True)

    async def withdraw_turn(self, turn_id: str) -> None:
        """Its client left before the turn began: store nothing of it.

        A begin still waiting for the slot stores nothing; one that already stored the user
        message removes it again in one write (with the title it gave the chat). A withdraw that
        arrives first is remembered, and the begin is refused when it comes.
        """
        await self._ensure_loaded()
        if turn_id in self._arriving:
            self._withdrawn.add(turn_id)
            if turn_id in self._waiting:
                self._waiting[turn_id].cancel()
            return
        if self._slot.finished(turn_id):
            return
        if not self._slot.holds(turn_id):
            try:
                if await self._adopt(turn_id) is not None:
                    return  # answered already: nothing to withdraw
            except FailedPrecondition:
                self._slot.remember(turn_id, WITHDRAWN)
                return
        await self._withdraw_held(turn_id)

    async def _withdraw_held(self, turn_id: str) -> None:
        assert self.chat is not None and self._slot.current is not None
        plan = self._slot.current
        try:
            if plan.created:
                await self._store.delete_chat(self.chat_id)
                self._set_state(None, [])
            elif self._regenerating(plan):
                await self._take_back(plan)
            else:
                await self._unsend(plan)
        except (StaleState, FailedPrecondition) as exc:
            self._forget_if_stale(exc)
            self._slot.finish(turn_id, "was overtaken by another activation of the chat")
            raise
        self._slot.finish(turn_id, WITHDRAWN)


def _creates(req: TurnRequest) -> bool:
    """Whether the request may create its chat: a new message with creation details, not a branch."""
    return req.create is not None and req.branch is None


def _scale(req: TurnRequest, params: ChatParams) -> float:
    return scale_for(req.correction, req.server_context, params.context_tokens, params.max_tokens)
