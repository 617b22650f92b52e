"""One conversation's turn protocol over a ChatStore; the Ray actor is a thin shell on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from actors.chatops import ChatOperations
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult
from actors.ratelimit import RateLimit
from actors.state import chat_title, entry, scale_for
from actors.turns import WITHDRAWN, TurnSlot
from actors.window import Window
from store.base import ChatStore
from store.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    StaleState,
)
from store.records import ChatParams, ChatRecord, ChatStatus, MessageRecord, MessageStatus, Role


class Conversation(ChatOperations):
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

    @property
    def busy(self) -> bool:
        return self._slot.busy

    # -- turns -----------------------------------------------------------------------------

    async def begin_turn(self, req: TurnRequest) -> TurnPlan | Recount:
        await self._ensure_active()
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
        self._check_access(req.user_id, creating=req.create is not None)
        self._check_rate()
        await self._queue(req.turn_id)
        titled = self.chat is not None and not self.chat.title
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
        try:
            return await self._start(req)
        except StaleState:
            # Another activation wrote first. Nothing of this turn is stored yet, so reload the
            # newest state and go again on top of it (once: a second conflict is reported).
            await self.activate()
            return await self._start(req)

    def _check_access(self, user_id: str, *, creating: bool) -> None:
        if self.chat is None and creating:
            return
        chat = self._owned(user_id)
        if chat.status is ChatStatus.ENDED:
            raise FailedPrecondition(f"chat {self.chat_id!r} has ended: start a new chat")

    async def _start(self, req: TurnRequest) -> TurnPlan | Recount:
        # Re-check after waiting: the chat may have been created, ended or reloaded meanwhile.
        self._check_access(req.user_id, creating=req.create is not None)
        if self.chat is None:
            assert req.create is not None
            return await self._create(req, req.create)
        if req.counted_for != self.chat.params.model:
            return Recount(self.chat.params.model)
        resumed = self._resume(req.turn_id)
        if resumed is not None:
            return resumed
        assert self.window is not None
        evict = self._plan(self.window, req.tokens, _scale(req, self.chat.params))
        self.correction = req.correction
        user = self._message(Role.USER, req.content, req.tokens, req.turn_id)
        version = await self._store.write(
            self.chat_id,
            self.chat.version,
            append=[user],
            erase=evict,
            title=chat_title(req.content) if not self.chat.title else None,
            active_leaf=user.seq,
        )
        title = self.chat.title or chat_title(req.content)
        self.chat = replace(self.chat, version=version, title=title, active_leaf=user.seq)
        self._admit(evict, [user])
        return self._plan_for(req.turn_id, user.seq, evicted=len(evict), created=False)

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
            await self.activate()  # another activation created it first: continue as theirs
            return await self._start(replace(req, create=None))
        self._load(chat, [*first, user])
        return self._plan_for(req.turn_id, user.seq, evicted=0, created=True)

    def _resume(self, turn_id: str) -> TurnPlan | None:
        """Re-open a turn whose user message a previous activation stored before it died."""
        mine = [r for r in self._records.values() if r.turn_id == turn_id]
        if not mine:
            return None
        if any(r.role is Role.ASSISTANT for r in mine):
            raise FailedPrecondition(f"turn {turn_id!r} already finished")
        if mine[0].seq != max(self._records):
            raise FailedPrecondition(
                f"turn {turn_id!r} was abandoned and the chat has moved on: send the message again"
            )
        return self._plan_for(turn_id, mine[0].seq, evicted=0, created=False)

    async def complete_turn(
        self,
        turn_id: str,
        reply: str,
        tokens: int,
        finish_reason: str,
        server_prompt_tokens: int | None = None,
    ) -> TurnResult:
        """Store the answer and free the chat for its next turn.

        `server_prompt_tokens`: the prompt size the model's server reported for this turn, if any.
        An empty answer is never a complete one: the gateway aborts such a turn instead.
        """
        if not reply.strip():
            raise InvalidArgument("an empty answer cannot be stored as complete: abort the turn instead")
        if server_prompt_tokens is not None:
            self.server_prompt_tokens = server_prompt_tokens
        return await self._end_turn(turn_id, reply, tokens, finish_reason, MessageStatus.COMPLETE)

    async def shrink_turn(self, turn_id: str, target_tokens: int) -> TurnPlan:
        """Evict more for the turn in progress: its LLM server found the prompt too large.

        The oldest messages go, never the system prompt nor this turn's user message, until the
        prompt is at most `target_tokens` by the window's count (or nothing more may go). The
        erasures are written through like any eviction; the turn's plan is returned with them.
        """
        if not self._slot.holds(turn_id) and await self._adopt(turn_id) is not None:
            raise FailedPrecondition(f"turn {turn_id!r} already finished")
        plan = self._slot.current
        assert plan is not None
        self._slot.current = await self._shrink(plan, target_tokens)
        return self._slot.current

    async def abort_turn(self, turn_id: str, partial: str, tokens: int, reason: str) -> TurnResult:
        """Free the chat after an LLM error or a cancel; a partial answer is kept, flagged."""
        return await self._end_turn(turn_id, partial, tokens, reason, MessageStatus.INTERRUPTED)

    async def renew_turn(self, turn_id: str) -> None:
        """The gateway is still streaming this turn's answer: restart its lease.

        On a fresh activation (the one that began it died) the turn is taken over first, so that
        its lease runs here and no queued turn begins under it.
        """
        if self._slot.renew(turn_id):
            return
        if self._slot.finished(turn_id):
            self._slot.outcome(turn_id)  # FailedPrecondition if it expired: the gateway stops renewing
            return
        await self._adopt(turn_id)

    async def withdraw_turn(self, turn_id: str) -> None:
        """Its client left before the turn began: store nothing of it.

        A begin still waiting for the slot stores nothing; one that already stored the user
        message removes it again in one write (with the title it gave the chat). A withdraw that
        arrives first is remembered, and the begin is refused when it comes.
        """
        await self._ensure_active()
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
                self._load(None, [])
            else:
                version = await self._store.write(
                    self.chat_id,
                    self.chat.version,
                    remove=[plan.user_message_id],
                    rename="" if self._titled_by == turn_id else None,
                )
                title = "" if self._titled_by == turn_id else self.chat.title
                leaf = self._records[plan.user_message_id].parent_seq
                self.chat = replace(self.chat, version=version, title=title, active_leaf=leaf)
                self._unadmit(plan.user_message_id)
        except StaleState as exc:
            self._forget_if_stale(exc)
            self._slot.finish(turn_id, "was overtaken by another activation of the chat")
            raise
        self._slot.finish(turn_id, WITHDRAWN)

    async def _end_turn(
        self, turn_id: str, text: str, tokens: int, finish_reason: str, status: MessageStatus
    ) -> TurnResult:
        if self._slot.finished(turn_id):
            return self._slot.outcome(turn_id)
        if not self._slot.holds(turn_id):
            answered = await self._adopt(turn_id)
            if answered is not None:
                return answered
        stored: MessageRecord | None = None
        if text or status is MessageStatus.COMPLETE:
            try:
                stored = await self._store_answer(turn_id, text, tokens, finish_reason, status)
            except (StaleState, FailedPrecondition) as exc:
                self._forget_if_stale(exc)
                self._slot.finish(turn_id, "was overtaken by another activation of the chat")
                raise
            # Any other failure (the store is down) keeps the turn open: the gateway retries,
            # or gives up with an empty abort, and the lease frees the chat if it never does.
        result = TurnResult(
            turn_id=turn_id,
            assistant_message_id=stored.seq if stored else None,
            status=stored.status if stored else None,
            finish_reason=finish_reason,
            window=self.window_info(),
        )
        self._slot.finish(turn_id, result)
        return result

    async def _store_answer(
        self, turn_id: str, text: str, tokens: int, finish_reason: str, status: MessageStatus
    ) -> MessageRecord:
        for attempt in (1, 2):
            assert self.chat is not None
            answer = self._message(Role.ASSISTANT, text, tokens, turn_id, status, finish_reason)
            try:
                version = await self._store.write(
                    self.chat_id, self.chat.version, append=[answer], active_leaf=answer.seq
                )
            except StaleState:
                if attempt == 2:
                    raise
                # An activation that died a moment ago may have written after this one loaded:
                # reload, and finish from what the store holds if the turn is still the last one.
                await self.activate()
                found = self._answer_of(turn_id)
                if found is not None:
                    return found
                self._resume(turn_id)  # FailedPrecondition if the chat has moved on
                continue
            self.chat = replace(self.chat, version=version, active_leaf=answer.seq)
            self._admit([], [answer])
            return answer
        raise AssertionError("unreachable")

    def _answer_of(self, turn_id: str) -> MessageRecord | None:
        for record in self._records.values():
            if record.turn_id == turn_id and record.role is Role.ASSISTANT:
                return record
        return None

    async def _adopt(self, turn_id: str) -> TurnResult | None:
        """Take over a turn that a previous activation began and did not finish (it died).

        Returns the stored answer if that activation finished it after all; otherwise the turn
        becomes this activation's own, provided nothing happened in the chat since it began.
        """
        await self._ensure_active()
        record = self._answer_of(turn_id)
        if record is not None:
            return TurnResult(
                turn_id, record.seq, record.status, record.finish_reason or "", self.window_info()
            )
        if self.busy:
            raise FailedPrecondition(f"turn {turn_id!r} is not in progress (the chat has moved on)")
        await self._slot.acquire()
        try:
            plan = self._resume(turn_id)
        except BaseException:
            self._slot.release()
            raise
        if plan is None:
            self._slot.release()
            raise FailedPrecondition(
                f"turn {turn_id!r} is not in progress (its lease expired or it never began)"
            )
        self._slot.hold(plan)
        return None


def _scale(req: TurnRequest, params: ChatParams) -> float:
    return scale_for(req.correction, req.server_context, params.context_tokens, params.max_tokens)
