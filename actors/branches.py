"""A conversation over its message tree: where a turn's message goes, switching branches, renaming."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from actors.protocol import Edit, Regenerate, TurnPlan, TurnRequest, WindowInfo
from actors.state import ChatState, chat_title
from actors.turns import TurnSlot
from store.base import MAX_TITLE_LENGTH
from store.errors import FailedPrecondition, InvalidArgument, NotFound, StaleState
from store.records import ChatRecord, MessageRecord, Role

T = TypeVar("T")
MAX_SEQ = 2**63 - 1  # a BIGINT: no message has a larger seq


class BranchOperations(ChatState):
    """Turns on any branch (a new message, an edit, a regenerate), switches and renames.

    The window is always the non-erased messages of the active path: a turn off the active path
    starts from the path to its parent, read from memory when that is a prefix of the window and
    from the store otherwise. Seqs come from the whole tree, never from the window.
    """

    _slot: TurnSlot
    _titled_by: str | None  # the held turn, if its message gave the chat its title
    _leaf_before: tuple[str, int | None] | None  # a turn begun here, and the active leaf it left

    # -- operations ------------------------------------------------------------------------

    async def switch(self, user_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        """Show the branch through `message_id` (down its newest children to a leaf), after any running turn.

        The window is rebuilt from the store over the new active path, as an activation does.
        """
        await self._ensure_loaded()
        self._owned(user_id)
        async with self._slot:

            async def move() -> None:
                self._owned(user_id)
                await self._move_leaf(await self._store.leaf_under(self.chat_id, _checked(message_id)))

            await self._retry_stale(move)
            return self._owned(user_id), self.window_info()

    async def rename(self, user_id: str, title: str, if_title: str | None = None) -> ChatRecord:
        """Replace the chat's title (an empty one clears it), after any running turn.

        `if_title`: only if the title is still that one (an automatic title never replaces a user's).
        """
        clean = renamed_title(title)
        await self._ensure_loaded()
        self._owned(user_id)
        async with self._slot:

            async def write() -> None:
                chat = self._owned(user_id)
                if if_title is not None and chat.title != if_title:
                    return
                version = await self._store.write(self.chat_id, chat.version, rename=clean)
                self.chat = replace(chat, version=version, title=clean)

            await self._retry_stale(write)
            return self._owned(user_id)

    # -- turns on a branch -----------------------------------------------------------------

    async def _base_of(
        self, branch: Edit | None
    ) -> tuple[int | None, list[MessageRecord], tuple[int, ...] | None]:
        """Where a new user message goes: its parent, the window it joins, the siblings it will have."""
        assert self.chat is not None
        if branch is None:
            return self.chat.active_leaf, self.window_messages(), None
        earlier = await self._message_at(branch.message_id)
        if earlier.role is not Role.USER:
            raise InvalidArgument(f"message {earlier.seq} is not a user message: only those can be edited")
        siblings = (await self._store.siblings(self.chat_id, [earlier.seq]))[earlier.seq]
        return earlier.parent_seq, await self._path_to(earlier.parent_seq), siblings

    async def _send(
        self, req: TurnRequest, parent: int | None, base: list[MessageRecord], evict: list[int]
    ) -> MessageRecord:
        """Store the request's message under `parent` with the evictions; it becomes the active leaf."""
        assert self.chat is not None
        user = MessageRecord(
            self.chat_id,
            await self._next_seq(),
            Role.USER,
            req.content,
            req.tokens,
            req.turn_id,
            parent_seq=parent,
        )
        title = None if self.chat.title else chat_title(req.content)
        version = await self._store.write(
            self.chat_id, self.chat.version, append=[user], erase=evict, title=title, active_leaf=user.seq
        )
        self.chat = replace(
            self.chat, version=version, title=self.chat.title or title or "", active_leaf=user.seq
        )
        gone = set(evict)
        self._rebuild([r for r in base if r.seq not in gone] + [user])
        self._last_seq = user.seq
        return user

    async def _start_regenerate(self, req: TurnRequest, again: Regenerate, scale: float) -> TurnPlan:
        """Move the active leaf to the user message answered again; its answer comes with the turn's end."""
        assert self.chat is not None
        if req.content or req.tokens:
            raise InvalidArgument("a regenerate sends no message: its content must be empty")
        question, beside = await self._answered(again.message_id)
        siblings = None if beside is None else (await self._store.siblings(self.chat_id, [beside]))[beside]
        path = await self._path_to(question.seq)
        # The question is in the prompt again: plan as if it arrived now, on the path before it.
        evict = self._plan(self._window_over(path[:-1]), question.tokens, scale)
        self.correction = req.correction
        if evict or self.chat.active_leaf != question.seq:
            version = await self._store.write(
                self.chat_id, self.chat.version, erase=evict, active_leaf=question.seq
            )
            self.chat = replace(self.chat, version=version, active_leaf=question.seq)
        gone = set(evict)
        self._rebuild([r for r in path if r.seq not in gone])
        plan = self._plan_for(req.turn_id, question.seq, evicted=len(evict), created=False)
        return replace(plan, siblings=siblings)

    async def _answered(self, message_id: int | None) -> tuple[MessageRecord, int | None]:
        """The user message a regenerate answers again, and the answer the new one goes beside."""
        assert self.chat is not None
        seq = message_id if message_id is not None else self.chat.active_leaf
        message = await self._message_at(seq) if seq is not None else None
        if message is None or (message_id is None and message.role is Role.SYSTEM):
            raise FailedPrecondition(f"chat {self.chat_id!r} has no answer to regenerate: send a message")
        if message.role is Role.USER:
            question, beside = message, None
        elif message.role is Role.ASSISTANT and message.parent_seq is not None:
            question, beside = await self._message_at(message.parent_seq), message.seq
        else:
            raise InvalidArgument(f"message {message.seq} is neither an answer nor a user message")
        if question.role is not Role.USER:
            raise InvalidArgument(f"message {message.seq} does not answer a user message")
        if question.erased:
            raise FailedPrecondition(
                f"message {question.seq} has left the context window: edit it to send it again"
            )
        return question, beside

    def _regenerating(self, plan: TurnPlan) -> bool:
        """Whether the held turn is a regenerate: its message is another turn's, nothing of it is stored."""
        question = self._records.get(plan.user_message_id)
        return question is not None and question.turn_id != plan.turn_id

    def _left_leaf(self, turn_id: str) -> int | None:
        """The active leaf a turn moved away from when it began (None: not begun here, or none)."""
        if self._leaf_before is not None and self._leaf_before[0] == turn_id:
            return self._leaf_before[1]
        return None

    async def _take_back(self, plan: TurnPlan) -> None:
        """A regenerate that stores nothing: the active leaf goes back to where it was."""
        self._check_current(plan.turn_id, plan.user_message_id)
        leaf = self._left_leaf(plan.turn_id)
        if leaf is None:  # taken over from a dead activation: back to the newest answer
            leaf = await self._store.leaf_under(self.chat_id, plan.user_message_id)
        await self._move_leaf(leaf)

    async def _unsend(self, plan: TurnPlan) -> None:
        """Remove a withdrawn turn's message (and the title it gave); the leaf goes back where it was."""
        assert self.chat is not None
        self._check_current(plan.turn_id, plan.user_message_id)
        parent = self._records[plan.user_message_id].parent_seq
        back = self._left_leaf(plan.turn_id)
        back = parent if back is None else back  # the parent: where the store moves it by itself
        path = await self._store.list_path(self.chat_id, leaf=back) if back != parent else None
        titled = self._titled_by == plan.turn_id
        version = await self._store.write(
            self.chat_id,
            self.chat.version,
            remove=[plan.user_message_id],
            rename="" if titled else None,
            active_leaf=back if path is not None else None,
        )
        self.chat = replace(
            self.chat, version=version, title="" if titled else self.chat.title, active_leaf=back
        )
        if path is None:
            self._unadmit(plan.user_message_id)
        else:
            self._rebuild(path)
            self._last_seq = None  # the removed seq is free again

    # -- the tree --------------------------------------------------------------------------

    async def _message_at(self, seq: int) -> MessageRecord:
        """One message of the chat, from the window if it is there; NotFound if the chat has none."""
        found = self._records.get(_checked(seq))
        if found is not None:
            return found
        rows = await self._store.list_path(self.chat_id, leaf=seq, include_erased=True, after_seq=seq - 1)
        return rows[0]

    async def _path_to(self, seq: int | None) -> list[MessageRecord]:
        """The non-erased messages from the root down to `seq` (none for None), in order."""
        if seq is None:
            return []
        if seq in self._records:  # on the active path: its path is a prefix of the window
            return [r for r in self.window_messages() if r.seq <= seq]
        return await self._store.list_path(self.chat_id, leaf=seq)

    async def _move_leaf(self, leaf: int) -> None:
        """Make `leaf` the active leaf; the window becomes the store's path to it."""
        assert self.chat is not None
        if leaf == self.chat.active_leaf:
            return
        # Read first: a write by another activation in between makes the write below stale.
        path = await self._store.list_path(self.chat_id, leaf=leaf)
        version = await self._store.write(self.chat_id, self.chat.version, active_leaf=leaf)
        self.chat = replace(self.chat, version=version, active_leaf=leaf)
        self._rebuild(path)

    async def _retry_stale(self, change: Callable[[], Awaitable[T]]) -> T:
        """Make a change; if another activation wrote first, reload and make it once more."""
        try:
            return await change()
        except StaleState:
            await self.load()
        try:
            return await change()
        except StaleState as exc:
            self._forget_if_stale(exc)
            raise


def renamed_title(title: str) -> str:
    """A title as given to rename: one line, spaces collapsed; InvalidArgument if it cannot be stored."""
    if not isinstance(title, str):
        raise InvalidArgument(f"a title is text, not {type(title).__name__}")
    clean = re.sub(r"\s+", " ", title).strip()
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in clean):
        raise InvalidArgument("a title holds no control characters nor lone surrogates")
    if len(clean) > MAX_TITLE_LENGTH:
        raise InvalidArgument(f"a title is at most {MAX_TITLE_LENGTH} characters, got {len(clean)}")
    return clean


def _checked(seq: int) -> int:
    """A message id as given: InvalidArgument if it is no whole number, NotFound if no message has it."""
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidArgument(f"a message id is a whole number, not {type(seq).__name__}")
    if not 0 < seq <= MAX_SEQ:
        raise NotFound(f"there is no message {seq}")
    return seq
