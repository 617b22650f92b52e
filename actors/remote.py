"""What both Ray placements share: the port's calls by name, Ray's failures as Gone, retry pauses."""

from __future__ import annotations

import logging
import random
from typing import Any, cast

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store.errors import ChatServiceError, Passivating, Unavailable
from store.records import ChatRecord, MessageRecord

log = logging.getLogger("chatservice.router")
FIRST_RETRY_SECONDS = 0.05  # the pause before the first retry; it doubles up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 1.0


class Gone(Exception):
    """The actor reached is dead or passivating (`dead`), or out of reach for a moment (not `dead`)."""

    def __init__(self, why: str, dead: bool = True) -> None:
        super().__init__(why)
        self.dead = dead


class RemoteConversations:
    """The Conversations port (actors/port.py) as named calls: `_call(chat_id, method, *args)`.

    Subclasses choose where a chat's calls go and how they are retried; every port method is the
    same one-liner for both, so it lives here once.
    """

    async def _call(self, chat_id: str, method: str, *args: Any) -> Any:
        raise NotImplementedError

    async def begin_turn(self, chat_id: str, req: TurnRequest) -> TurnPlan | Recount:
        return cast(TurnPlan | Recount, await self._call(chat_id, "begin_turn", req))

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
        result = await self._call(
            chat_id, "complete_turn", turn_id, reply, tokens, finish, server_prompt_tokens, user_message_id
        )
        return cast(TurnResult, result)

    async def shrink_turn(
        self, chat_id: str, turn_id: str, target_tokens: int, user_message_id: int | None = None
    ) -> TurnPlan:
        """Evict more for a running turn whose LLM server found its prompt too large."""
        plan = await self._call(chat_id, "shrink_turn", turn_id, target_tokens, user_message_id)
        return cast(TurnPlan, plan)

    async def abort_turn(
        self,
        chat_id: str,
        turn_id: str,
        partial: str,
        tokens: int,
        reason: str,
        user_message_id: int | None = None,
    ) -> TurnResult:
        result = await self._call(chat_id, "abort_turn", turn_id, partial, tokens, reason, user_message_id)
        return cast(TurnResult, result)

    async def renew_turn(self, chat_id: str, turn_id: str, user_message_id: int | None = None) -> None:
        await self._call(chat_id, "renew_turn", turn_id, user_message_id)

    async def withdraw_turn(self, chat_id: str, turn_id: str) -> None:
        await self._call(chat_id, "withdraw_turn", turn_id)

    async def create(self, chat_id: str, user_id: str, new: NewChat) -> ChatRecord:
        return cast(ChatRecord, await self._call(chat_id, "create", user_id, new))

    async def describe(self, chat_id: str, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        return cast(tuple[ChatRecord, WindowInfo], await self._call(chat_id, "describe", user_id))

    async def end(self, chat_id: str, user_id: str) -> ChatRecord:
        return cast(ChatRecord, await self._call(chat_id, "end", user_id))

    async def switch(self, chat_id: str, user_id: str, message_id: int) -> tuple[ChatRecord, WindowInfo]:
        """Show the branch through a message: the active leaf becomes the leaf under it."""
        return cast(tuple[ChatRecord, WindowInfo], await self._call(chat_id, "switch", user_id, message_id))

    async def rename(self, chat_id: str, user_id: str, title: str, if_title: str | None = None) -> ChatRecord:
        """Rename the chat; with `if_title`, only while its title is still that one (else unchanged)."""
        return cast(ChatRecord, await self._call(chat_id, "rename", user_id, title, if_title))

    async def delete(self, chat_id: str, user_id: str) -> None:
        await self._call(chat_id, "delete", user_id)

    async def window_messages(self, chat_id: str) -> list[MessageRecord]:
        return cast(list[MessageRecord], await self._call(chat_id, "window_messages"))


# The calls a conversation answers; a host refuses any other name.
PORT_CALLS = frozenset(
    name for name, value in vars(RemoteConversations).items() if callable(value) and not name.startswith("_")
)


def backoff(attempt: int) -> float:
    """Exponential, with jitter so that the callers of one dead actor do not retry in step."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


async def unwrap(ref: Any) -> Any:
    """Await a Ray call: our errors come back as themselves, a dead actor as Gone."""
    try:
        return await ref
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Passivating):
            raise Gone("its actor is passivating") from None
        if isinstance(cause, ChatServiceError):
            raise cause from None
        # The type only: the message of an unexpected error may quote the chat's text.
        log.error("a conversation call failed: %s", type(cause).__name__)
        raise Unavailable("the conversation failed unexpectedly; retry") from exc
    except ActorDiedError as exc:
        raise Gone(f"its actor died ({_first_line(exc)})") from None
    except ActorUnavailableError as exc:
        # Maybe alive (a busy node): the same actor is tried again.
        raise Gone(f"its actor is out of reach ({_first_line(exc)})", dead=False) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
