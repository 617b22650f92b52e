"""A conversation's state in memory: the chat record, its window and the records the window holds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

from actors.protocol import NewChat, TurnPlan, WindowInfo
from actors.window import Entry, Window, WindowError
from store.access import check_owner
from store.base import ChatStore
from store.errors import FailedPrecondition, MessageTooLarge, NotFound, StaleState
from store.records import ChatRecord, MessageRecord, Role

TITLE_CHARS = 80


def chat_title(content: str) -> str:
    text = re.sub(r"\s+", " ", content).strip()
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"


class ChatState:
    """What one activation knows of its chat; loaded from the store, changed only after a write succeeds."""

    def __init__(
        self,
        chat_id: str,
        store: ChatStore,
        on_activated: Callable[[float], None] = lambda seconds: None,
        evict_to: float = 1.0,
    ) -> None:
        self.chat_id = chat_id
        self._store = store
        self._on_activated = on_activated  # told how long each activation took (a metric)
        self._evict_to = evict_to  # the window's low-water mark (EVICT_TO)
        self._loaded = False
        self.chat: ChatRecord | None = None
        self.window: Window | None = None
        self._records: dict[int, MessageRecord] = {}
        self._last_seq: int | None = None  # the largest seq of the whole tree, once read (None: not yet)
        # Observations of this activation, shown with the window (not stored).
        self.server_prompt_tokens: int | None = None
        self.correction: float | None = None

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the chat and the non-erased messages of its active path; the window is rebuilt exactly."""
        started = time.monotonic()
        chat = await self._store.get_chat(self.chat_id)
        records = await self._store.list_path(self.chat_id) if chat else []
        self._set_state(chat, records)
        self._loaded = True
        self._on_activated(time.monotonic() - started)

    def _set_state(self, chat: ChatRecord | None, records: list[MessageRecord]) -> None:
        self.chat = chat
        self._last_seq = None
        self._rebuild(records)

    def _rebuild(self, records: list[MessageRecord]) -> None:
        """The window over exactly these records: the non-erased messages of the active path, in order."""
        self._records = {r.seq: r for r in records}
        self.window = self._window_over(records) if self.chat is not None else None

    def _window_over(self, records: list[MessageRecord]) -> Window:
        assert self.chat is not None
        window = Window(self.chat.params.context_tokens, self.chat.params.max_tokens, evict_to=self._evict_to)
        window.apply(add=[entry(r) for r in records])
        return window

    async def _next_seq(self) -> int:
        """The seq a new message takes: after every message of the tree, on any branch."""
        if self._last_seq is None:
            self._last_seq = await self._store.last_seq(self.chat_id)
        return self._last_seq + 1

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            await self.load()

    def _forget_if_stale(self, exc: BaseException) -> None:
        if isinstance(exc, StaleState):
            self._loaded = False  # another activation wrote: reload before the next write

    def window_info(self) -> WindowInfo:
        if self.window is None or self.chat is None:
            raise NotFound(f"chat {self.chat_id!r} does not exist")
        return WindowInfo(
            messages=len(self.window.entries),
            tokens=self.window.prompt_tokens,
            context_tokens=self.chat.params.context_tokens,
            server_prompt_tokens=self.server_prompt_tokens,
            correction=self.correction,
        )

    async def snapshot(self) -> list[MessageRecord]:
        """The window's messages, activating first if needed."""
        await self._ensure_loaded()
        return self.window_messages()

    def window_messages(self) -> list[MessageRecord]:
        """The records the model sees, in order (what a rebuild from the store must equal)."""
        return [self._records[s] for s in self.window.seqs()] if self.window else []

    def _opening(self, new: NewChat) -> list[MessageRecord]:
        """The system message a new chat starts with, checked to leave room for a message."""
        if not new.system_prompt:
            return []
        system = MessageRecord(self.chat_id, 1, Role.SYSTEM, new.system_prompt, new.system_tokens)
        window = Window(new.params.context_tokens, new.params.max_tokens)
        window.apply(add=[entry(system)])
        if window.max_message_tokens < 1:
            raise MessageTooLarge(
                f"the system prompt ({new.system_tokens} tokens) leaves no room for messages in a "
                f"{new.params.context_tokens}-token window: shorten it or lower max_tokens"
            )
        return [system]

    @staticmethod
    def _plan(window: Window, tokens: int, scale: float = 1.0) -> list[int]:
        """The evictions that admit a message, with the prompt counted as its tokens x `scale`."""
        try:
            return scaled(window, scale).plan(tokens)
        except WindowError as exc:
            raise MessageTooLarge(str(exc)) from None

    async def _shrink(self, plan: TurnPlan, target_tokens: int) -> TurnPlan:
        """Evict for a running turn until its prompt is at most the target; its plan after that."""
        assert self.window is not None and self.chat is not None
        self._check_current(plan.turn_id, plan.user_message_id)
        evict = self._evictions_to(self.window, plan.user_message_id, target_tokens)
        if not evict:
            return plan
        try:
            version = await self._store.write(self.chat_id, self.chat.version, erase=evict)
        except StaleState as exc:
            self._forget_if_stale(exc)
            raise
        self.chat = replace(self.chat, version=version)
        self._admit(evict, [])
        shrunk = self._plan_for(
            plan.turn_id, plan.user_message_id, evicted=plan.evicted + len(evict), created=False
        )
        return replace(shrunk, created=plan.created)

    @staticmethod
    def _evictions_to(window: Window, keep: int, target_tokens: int) -> list[int]:
        """The oldest evictable entries to drop, `keep` spared, until the prompt is at most the target."""
        kept = next(e for e in window.entries if e.seq == keep)
        rest = [e for e in window.entries if e.seq != keep]
        view = replace(window, context_tokens=window.reserve_tokens + max(target_tokens, 1), entries=rest)
        try:
            return view.plan(kept.tokens)
        except WindowError:
            return [e.seq for e in rest if not e.pinned]  # it cannot reach the target: all that may go

    def _plan_for(self, turn_id: str, user_seq: int, *, evicted: int, created: bool) -> TurnPlan:
        assert self.chat is not None
        records = self.window_messages()
        prompt = tuple({"role": r.role.value, "content": r.content} for r in records)
        return TurnPlan(
            turn_id=turn_id,
            chat_id=self.chat_id,
            created=created,
            user_message_id=user_seq,
            messages=prompt,
            params=self.chat.params,
            evicted=evicted,
            window=self.window_info(),
            seqs=tuple(r.seq for r in records),
        )

    def _check_current(self, turn_id: str, message_id: int) -> None:
        """A turn goes on only while its message is the active leaf (else the chat has moved on)."""
        if self.chat is None or self.chat.active_leaf != message_id:
            raise FailedPrecondition(
                f"turn {turn_id!r} was abandoned and the chat has moved on: send the message again"
            )

    def _admit(self, evict: list[int], added: list[MessageRecord]) -> None:
        assert self.window is not None
        self.window.apply(evict, [entry(m) for m in added])
        for seq in evict:
            self._records.pop(seq, None)
        self._records.update((m.seq, m) for m in added)
        if self._last_seq is not None:
            self._last_seq = max([self._last_seq, *(m.seq for m in added)])

    def _unadmit(self, seq: int) -> None:
        """Take a message back out of the window (its turn was withdrawn and it is removed)."""
        assert self.window is not None
        self.window.apply([seq])
        self._records.pop(seq, None)
        self._last_seq = None  # its seq is free again: read the tree's last one when next needed

    def _owned(self, user_id: str) -> ChatRecord:
        check_owner(self.chat_id, self.chat.user_id if self.chat else None, user_id)
        assert self.chat is not None
        return self.chat


def entry(record: MessageRecord) -> Entry:
    return Entry(record.seq, record.tokens, pinned=record.role is Role.SYSTEM)


def scale_for(correction: float, server_context: int | None, context: int, reserve: int) -> float:
    """Server tokens per counted token, and the squeeze that fits a chat's budget to a smaller server."""
    if server_context is None or server_context >= context:
        return correction
    return correction * (context - reserve) / max(server_context - reserve, 1)


def scaled(window: Window, scale: float) -> Window:
    """The same entries under a budget divided by `scale`: planning it plans tokens x scale."""
    if scale == 1.0:
        return window
    # replace() keeps every other setting of the window's rule; only the budget changes.
    return replace(window, context_tokens=window.reserve_tokens + max(int(window.budget / scale), 1))
