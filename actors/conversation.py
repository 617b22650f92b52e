"""One conversation's state and turn protocol over a ChatStore; the Ray actor is a thin shell on it."""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

from actors import metrics
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from actors.window import Entry, Window, WindowError
from store.base import ChatStore
from store.errors import (
    AlreadyExists,
    FailedPrecondition,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
    StaleState,
)
from store.records import ChatRecord, ChatStatus, MessageRecord, MessageStatus, Role

TITLE_CHARS = 80
_REMEMBERED_TURNS = 64


@dataclass(slots=True)
class _InFlight:
    plan: TurnPlan
    lease: asyncio.TimerHandle


def _title(content: str) -> str:
    text = re.sub(r"\s+", " ", content).strip()
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


class Conversation:
    """Holds a chat's window in memory and writes every change through before acknowledging it.

    Turns run one at a time in arrival order: begin_turn takes the chat's turn slot and
    complete_turn or abort_turn gives it back; a lease of `turn_timeout` seconds frees it if
    the gateway never comes back.
    """

    def __init__(self, chat_id: str, store: ChatStore, turn_timeout: float) -> None:
        self.chat_id = chat_id
        self._store = store
        self._turn_timeout = turn_timeout
        self._slot = asyncio.Lock()  # FIFO: asyncio.Lock wakes waiters in arrival order
        self._current: _InFlight | None = None
        self._finished: OrderedDict[str, TurnResult] = OrderedDict()
        self._active = False
        self.chat: ChatRecord | None = None
        self.window: Window | None = None
        self._records: dict[int, MessageRecord] = {}

    # -- activation ------------------------------------------------------------------------

    async def activate(self) -> None:
        """Load the chat and its non-erased messages; the window is rebuilt exactly."""
        started = time.monotonic()
        chat = await self._store.get_chat(self.chat_id)
        records = await self._store.list_messages(self.chat_id) if chat else []
        self._load(chat, records)
        self._active = True
        metrics.activated(time.monotonic() - started)

    def _load(self, chat: ChatRecord | None, records: list[MessageRecord]) -> None:
        self.chat = chat
        self._records = {r.seq: r for r in records}
        self.window = None
        if chat is not None:
            self.window = Window(chat.params.context_tokens, chat.params.max_tokens)
            self.window.apply(add=[_entry(r) for r in records])

    async def _ensure_active(self) -> None:
        if not self._active:
            await self.activate()

    def _forget_if_stale(self, exc: BaseException) -> None:
        if isinstance(exc, StaleState):
            self._active = False  # another activation wrote: reload before the next write

    @property
    def busy(self) -> bool:
        return self._slot.locked()

    def window_info(self) -> WindowInfo:
        if self.window is None or self.chat is None:
            raise NotFound(f"chat {self.chat_id!r} does not exist")
        return WindowInfo(
            messages=len(self.window.entries),
            tokens=self.window.prompt_tokens,
            context_tokens=self.chat.params.context_tokens,
        )

    async def snapshot(self) -> list[MessageRecord]:
        """The window's messages, activating first if needed."""
        await self._ensure_active()
        return self.window_messages()

    def window_messages(self) -> list[MessageRecord]:
        """The records the model sees, in order (what a rebuild from the store must equal)."""
        return [self._records[s] for s in self.window.seqs()] if self.window else []

    # -- turns -----------------------------------------------------------------------------

    async def begin_turn(self, req: TurnRequest) -> TurnPlan | Recount:
        await self._ensure_active()
        if self._current is not None and self._current.plan.turn_id == req.turn_id:
            return self._current.plan  # a retried begin after a lost reply
        if req.turn_id in self._finished:
            raise FailedPrecondition(f"turn {req.turn_id!r} already finished")
        self._check_access(req.user_id, creating=req.create is not None)
        await self._slot.acquire()
        try:
            result = await self._start(req)
        except BaseException as exc:
            self._slot.release()
            self._forget_if_stale(exc)
            raise
        if isinstance(result, Recount):
            self._slot.release()
            return result
        lease = asyncio.get_running_loop().call_later(self._turn_timeout, self._expire, req.turn_id)
        self._current = _InFlight(result, lease)
        return result

    def _check_access(self, user_id: str, *, creating: bool) -> None:
        if self.chat is None:
            if not creating:
                raise NotFound(f"chat {self.chat_id!r} does not exist")
            return
        if self.chat.user_id != user_id:
            raise PermissionDenied(f"chat {self.chat_id!r} belongs to another user")
        if self.chat.status is ChatStatus.ENDED:
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
        evict = self._plan(self.window, req.tokens)
        user = self._message(Role.USER, req.content, req.tokens, req.turn_id)
        version = await self._store.write(
            self.chat_id,
            self.chat.version,
            append=[user],
            erase=evict,
            title=_title(req.content) if not self.chat.title else None,
        )
        title = self.chat.title or _title(req.content)
        self.chat = replace(self.chat, version=version, title=title)
        self._admit(evict, [user])
        return self._plan_for(req.turn_id, user.seq, evicted=len(evict), created=False)

    async def _create(self, req: TurnRequest, new: NewChat) -> TurnPlan | Recount:
        if req.counted_for != new.params.model:
            return Recount(new.params.model)
        chat = ChatRecord(id=self.chat_id, user_id=req.user_id, params=new.params, title=_title(req.content))
        first = self._opening(new)
        window = Window(new.params.context_tokens, new.params.max_tokens)
        window.apply(add=[_entry(m) for m in first])
        self._plan(window, req.tokens)
        user = MessageRecord(
            self.chat_id, len(first) + 1, Role.USER, req.content, req.tokens, turn_id=req.turn_id
        )
        try:
            await self._store.create_chat(chat, [*first, user])
        except AlreadyExists:
            await self.activate()  # another activation created it first: continue as theirs
            return await self._start(replace(req, create=None))
        self._load(chat, [*first, user])
        return self._plan_for(req.turn_id, user.seq, evicted=0, created=True)

    def _opening(self, new: NewChat) -> list[MessageRecord]:
        """The system message a new chat starts with, checked to leave room for a message."""
        if not new.system_prompt:
            return []
        system = MessageRecord(self.chat_id, 1, Role.SYSTEM, new.system_prompt, new.system_tokens)
        window = Window(new.params.context_tokens, new.params.max_tokens)
        window.apply(add=[_entry(system)])
        if window.max_message_tokens < 1:
            raise MessageTooLarge(
                f"the system prompt ({new.system_tokens} tokens) leaves no room for messages in a "
                f"{new.params.context_tokens}-token window: shorten it or lower max_tokens"
            )
        return [system]

    def _resume(self, turn_id: str) -> TurnPlan | None:
        """Re-open a turn whose user message a previous activation stored before it died."""
        mine = [r for r in self._records.values() if r.turn_id == turn_id]
        if not mine:
            return None
        if any(r.role is Role.ASSISTANT for r in mine):
            raise FailedPrecondition(f"turn {turn_id!r} already finished")
        return self._plan_for(turn_id, mine[0].seq, evicted=0, created=False)

    @staticmethod
    def _plan(window: Window, tokens: int) -> list[int]:
        try:
            return window.plan(tokens)
        except WindowError as exc:
            raise MessageTooLarge(str(exc)) from None

    def _plan_for(self, turn_id: str, user_seq: int, *, evicted: int, created: bool) -> TurnPlan:
        assert self.chat is not None
        prompt = tuple({"role": r.role.value, "content": r.content} for r in self.window_messages())
        return TurnPlan(
            turn_id=turn_id,
            chat_id=self.chat_id,
            created=created,
            user_message_id=user_seq,
            messages=prompt,
            params=self.chat.params,
            evicted=evicted,
            window=self.window_info(),
        )

    def _message(
        self,
        role: Role,
        content: str,
        tokens: int,
        turn_id: str,
        status: MessageStatus = MessageStatus.COMPLETE,
        finish_reason: str | None = None,
    ) -> MessageRecord:
        seq = max(self._records, default=0) + 1
        return MessageRecord(self.chat_id, seq, role, content, tokens, turn_id, status, finish_reason)

    def _admit(self, evict: list[int], added: list[MessageRecord]) -> None:
        assert self.window is not None
        self.window.apply(evict, [_entry(m) for m in added])
        for seq in evict:
            self._records.pop(seq, None)
        self._records.update((m.seq, m) for m in added)

    async def complete_turn(self, turn_id: str, reply: str, tokens: int, finish_reason: str) -> TurnResult:
        """Store the answer and free the chat for its next turn."""
        return await self._end_turn(turn_id, reply, tokens, finish_reason, MessageStatus.COMPLETE)

    async def abort_turn(self, turn_id: str, partial: str, tokens: int, reason: str) -> TurnResult:
        """Free the chat after an LLM error or a cancel; a partial answer is kept, flagged."""
        return await self._end_turn(turn_id, partial, tokens, reason, MessageStatus.INTERRUPTED)

    async def _end_turn(
        self, turn_id: str, text: str, tokens: int, finish_reason: str, status: MessageStatus
    ) -> TurnResult:
        if turn_id in self._finished:
            return self._finished[turn_id]
        if self._current is None or self._current.plan.turn_id != turn_id:
            raise FailedPrecondition(
                f"turn {turn_id!r} is not in progress (its lease expired or it never began)"
            )
        stored: MessageRecord | None = None
        if text or status is MessageStatus.COMPLETE:
            assert self.chat is not None
            stored = self._message(Role.ASSISTANT, text, tokens, turn_id, status, finish_reason)
            try:
                version = await self._store.write(self.chat_id, self.chat.version, append=[stored])
            except StaleState as exc:
                self._forget_if_stale(exc)
                self._finish(turn_id, TurnResult(turn_id, None, None, "stale", self.window_info()))
                raise
            self.chat = replace(self.chat, version=version)
            self._admit([], [stored])
        result = TurnResult(
            turn_id=turn_id,
            assistant_message_id=stored.seq if stored else None,
            status=stored.status if stored else None,
            finish_reason=finish_reason,
            window=self.window_info(),
        )
        self._finish(turn_id, result)
        return result

    def _expire(self, turn_id: str) -> None:
        if self._current is not None and self._current.plan.turn_id == turn_id:
            self._finish(turn_id, TurnResult(turn_id, None, None, "lease_expired", self.window_info()))

    def _finish(self, turn_id: str, result: TurnResult) -> None:
        assert self._current is not None
        self._current.lease.cancel()
        self._current = None
        self._finished[turn_id] = result
        while len(self._finished) > _REMEMBERED_TURNS:
            self._finished.popitem(last=False)
        self._slot.release()

    # -- the chat itself -------------------------------------------------------------------

    async def create(self, user_id: str, new: NewChat) -> ChatRecord:
        """Create the chat with no turn yet; AlreadyExists if the id is taken."""
        async with self._slot:
            await self._ensure_active()
            if self.chat is not None:
                raise AlreadyExists(f"chat {self.chat_id!r} already exists")
            chat = ChatRecord(id=self.chat_id, user_id=user_id, params=new.params)
            first = self._opening(new)
            try:
                await self._store.create_chat(chat, first)
            except AlreadyExists:
                self._active = False
                raise
            self._load(chat, first)
            return chat

    async def describe(self, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        """The chat and its window, for its owner."""
        await self._ensure_active()
        chat = self._owned(user_id)
        return chat, self.window_info()

    async def end(self, user_id: str) -> ChatRecord:
        """Mark the chat ended (after any running turn); further turns fail."""
        await self._ensure_active()
        self._owned(user_id)
        async with self._slot:
            chat = self._owned(user_id)
            if chat.status is ChatStatus.ENDED:
                return chat
            try:
                version = await self._store.write(self.chat_id, chat.version, status=ChatStatus.ENDED)
            except StaleState as exc:
                self._forget_if_stale(exc)
                raise
            self.chat = replace(chat, version=version, status=ChatStatus.ENDED)
            return self.chat

    async def delete(self, user_id: str) -> None:
        """Delete the chat and all its messages (after any running turn)."""
        await self._ensure_active()
        self._owned(user_id)
        async with self._slot:
            self._owned(user_id)
            await self._store.delete_chat(self.chat_id)
            self._load(None, [])

    def _owned(self, user_id: str) -> ChatRecord:
        if self.chat is None:
            raise NotFound(f"chat {self.chat_id!r} does not exist")
        if self.chat.user_id != user_id:
            raise PermissionDenied(f"chat {self.chat_id!r} belongs to another user")
        return self.chat


def _entry(record: MessageRecord) -> Entry:
    return Entry(record.seq, record.tokens, pinned=record.role is Role.SYSTEM)
