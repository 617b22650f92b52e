"""How a turn ends: its answer stored (complete, abort), its lease renewed, its prompt shrunk.

A turn that a previous activation began and did not finish (it died) is taken over here.
"""

from __future__ import annotations

from dataclasses import replace

from actors.branches import BranchOperations
from actors.protocol import TurnPlan, TurnResult
from store.errors import FailedPrecondition, InvalidArgument, StaleState
from store.records import MessageRecord, MessageStatus, Role


class TurnEndings(BranchOperations):
    """The end of the turn the chat's slot holds, or of one a dead activation held."""

    async def complete_turn(
        self,
        turn_id: str,
        reply: str,
        tokens: int,
        finish_reason: str,
        server_prompt_tokens: int | None = None,
        user_message_id: int | None = None,
    ) -> TurnResult:
        """Store the answer and free the chat for its next turn.

        `server_prompt_tokens`: the prompt size the model's server reported for this turn, if any.
        An empty answer is never a complete one: the gateway aborts such a turn instead.
        `user_message_id`: the plan's, so that a fresh activation can take over a regenerate
        (here and in abort, renew and shrink).
        """
        if not reply.strip():
            raise InvalidArgument("an empty answer cannot be stored as complete: abort the turn instead")
        if server_prompt_tokens is not None:
            self.server_prompt_tokens = server_prompt_tokens
        done = MessageStatus.COMPLETE
        return await self._end_turn(turn_id, reply, tokens, finish_reason, done, user_message_id)

    async def shrink_turn(
        self, turn_id: str, target_tokens: int, user_message_id: int | None = None
    ) -> TurnPlan:
        """Evict more for the turn in progress: its LLM server found the prompt too large.

        The oldest messages go, never the system prompt nor this turn's user message, until the
        prompt is at most `target_tokens` by the window's count (or nothing more may go). The
        erasures are written through like any eviction; the turn's plan is returned with them.
        """
        if not self._slot.holds(turn_id) and await self._adopt(turn_id, user_message_id) is not None:
            raise FailedPrecondition(f"turn {turn_id!r} already finished")
        plan = self._slot.current
        assert plan is not None
        self._slot.current = await self._shrink(plan, target_tokens)
        return self._slot.current

    async def abort_turn(
        self, turn_id: str, partial: str, tokens: int, reason: str, user_message_id: int | None = None
    ) -> TurnResult:
        """Free the chat after an LLM error or a cancel; a partial answer is kept, flagged.

        A regenerate aborted before any text stores nothing: the active leaf goes back where it was.
        """
        interrupted = MessageStatus.INTERRUPTED
        return await self._end_turn(turn_id, partial, tokens, reason, interrupted, user_message_id)

    async def renew_turn(self, turn_id: str, user_message_id: int | None = None) -> None:
        """The gateway is still streaming this turn's answer: restart its lease.

        On a fresh activation (the one that began it died) the turn is taken over first, so that
        its lease runs here and no queued turn begins under it.
        """
        if self._slot.renew(turn_id):
            return
        if self._slot.finished(turn_id):
            self._slot.outcome(turn_id)  # FailedPrecondition if it expired: the gateway stops renewing
            return
        await self._adopt(turn_id, user_message_id)

    async def _end_turn(
        self,
        turn_id: str,
        text: str,
        tokens: int,
        finish_reason: str,
        status: MessageStatus,
        user_message_id: int | None,
    ) -> TurnResult:
        if self._slot.finished(turn_id):
            return self._slot.outcome(turn_id)
        if not self._slot.holds(turn_id):
            answered = await self._adopt(turn_id, user_message_id)
            if answered is not None:
                return answered
        assert self._slot.current is not None
        plan = self._slot.current
        stored: MessageRecord | None = None
        try:
            if text or status is MessageStatus.COMPLETE:
                stored = await self._store_answer(plan, text, tokens, finish_reason, status)
            elif self._regenerating(plan):
                await self._take_back(plan)
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
            active_leaf=self.chat.active_leaf if self.chat else None,
        )
        self._slot.finish(turn_id, result)
        return result

    async def _store_answer(
        self, plan: TurnPlan, text: str, tokens: int, finish_reason: str, status: MessageStatus
    ) -> MessageRecord:
        for attempt in (1, 2):
            assert self.chat is not None
            self._check_current(plan.turn_id, plan.user_message_id)
            answer = MessageRecord(
                self.chat_id,
                await self._next_seq(),
                Role.ASSISTANT,
                text,
                tokens,
                plan.turn_id,
                status,
                finish_reason,
                parent_seq=plan.user_message_id,
            )
            try:
                version = await self._store.write(
                    self.chat_id, self.chat.version, append=[answer], active_leaf=answer.seq
                )
            except StaleState:
                if attempt == 2:
                    raise
                # An activation that died a moment ago may have written after this one loaded:
                # reload, and finish from what the store holds if the turn's message is still the
                # active leaf (checked above on the next attempt).
                await self.load()
                found = self._answer_of(plan.turn_id)
                if found is not None:
                    return found
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

    async def _adopt(self, turn_id: str, answering: int | None = None) -> TurnResult | None:
        """Take over a turn that a previous activation began and did not finish (it died).

        Returns the stored answer if that activation finished it after all; otherwise the turn
        becomes this activation's own, provided nothing happened in the chat since it began.
        """
        await self._ensure_loaded()
        record = self._answer_of(turn_id)
        if record is not None:
            reason = record.finish_reason or ""
            leaf = self.chat.active_leaf if self.chat else None
            return TurnResult(turn_id, record.seq, record.status, reason, self.window_info(), leaf)
        if self._slot.busy:
            raise FailedPrecondition(f"turn {turn_id!r} is not in progress (the chat has moved on)")
        await self._slot.acquire()
        try:
            plan = self._resume(turn_id, answering)
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

    def _resume(self, turn_id: str, answering: int | None = None) -> TurnPlan | None:
        """Re-open a turn a previous activation began before it died, if its message is the active leaf.

        A new message or an edit is found by its turn id; a regenerate stores nothing before its
        answer, so it is known by the user message it answers (`answering`, from its plan).
        """
        mine = [r for r in self._records.values() if r.turn_id == turn_id]
        if any(r.role is Role.ASSISTANT for r in mine):
            raise FailedPrecondition(f"turn {turn_id!r} already finished")
        question = mine[0].seq if mine else answering
        if question is None:
            return None
        self._check_current(turn_id, question)
        record = self._records.get(question)
        if record is None or record.role is not Role.USER:
            raise FailedPrecondition(
                f"turn {turn_id!r} is not in progress (message {question} awaits no answer)"
            )
        return self._plan_for(turn_id, question, evicted=0, created=False)
