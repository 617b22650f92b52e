"""The Conversations port: what gateways may ask of the conversations, keyed by chat id."""

from __future__ import annotations

from typing import Protocol

from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store.records import ChatRecord, MessageRecord


class Conversations(Protocol):
    """Every chat's turns and lifecycle, wherever its conversation lives.

    Implementations: ConversationRouter (actors/router.py, one Ray actor per chat) and
    LocalConversations (actors/inprocess.py, in this process). Each call reaches the chat's one
    Conversation (actors/conversation.py), which runs one turn at a time; errors are the store's
    tree (store/errors.py), never a transport's. Turn calls are idempotent by turn id, so an
    implementation may retry them on a fresh activation.
    """

    # -- turns: begin, then complete or abort (or shrink, renew, withdraw meanwhile) ---------

    async def begin_turn(self, chat_id: str, req: TurnRequest) -> TurnPlan | Recount:
        """Store the user's message and plan the prompt, once the chat's turn slot is free."""
        ...

    async def complete_turn(
        self,
        chat_id: str,
        turn_id: str,
        reply: str,
        tokens: int,
        finish: str,
        server_prompt_tokens: int | None = None,
        user_message_id: int | None = None,
    ) -> TurnResult:
        """Store the answer and free the chat."""
        ...

    async def abort_turn(
        self,
        chat_id: str,
        turn_id: str,
        partial: str,
        tokens: int,
        reason: str,
        user_message_id: int | None = None,
    ) -> TurnResult:
        """Store what was answered, marked as cut short, and free the chat."""
        ...

    async def shrink_turn(
        self, chat_id: str, turn_id: str, target_tokens: int, user_message_id: int | None = None
    ) -> TurnPlan:
        """Evict more for a running turn whose LLM server found its prompt too large."""
        ...

    async def renew_turn(self, chat_id: str, turn_id: str, user_message_id: int | None = None) -> None:
        """Extend a running turn's lease."""
        ...

    async def withdraw_turn(self, chat_id: str, turn_id: str) -> None:
        """Store nothing of a turn whose client left before it began."""
        ...

    # -- chats ----------------------------------------------------------------------------

    async def create(self, chat_id: str, user_id: str, new: NewChat) -> ChatRecord: ...

    async def describe(self, chat_id: str, user_id: str) -> tuple[ChatRecord, WindowInfo]: ...

    async def end(self, chat_id: str, user_id: str) -> ChatRecord: ...

    async def delete(self, chat_id: str, user_id: str) -> None: ...

    async def switch(self, chat_id: str, user_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        """Show the branch through a message: the active leaf becomes the leaf under it."""
        ...

    async def rename(self, chat_id: str, user_id: str, title: str, if_title: str | None = None) -> ChatRecord:
        """Rename the chat; with `if_title`, only while its title is still that one (else unchanged)."""
        ...

    async def window_messages(self, chat_id: str) -> list[MessageRecord]:
        """The messages the model sees now (tests compare it with a rebuild from the store)."""
        ...

    async def close(self) -> None:
        """Release what this process holds (the chats themselves live on in the store)."""
        ...
