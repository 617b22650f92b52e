"""chat_id -> conversation actor: get-or-create by name, cached handles, one retry on a dead actor."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, cast

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actors.actor import NAMESPACE, ActorConfig, ConversationActor, actor_name
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store.errors import ChatServiceError, Unavailable
from store.records import ChatRecord, MessageRecord

log = logging.getLogger("chatservice.registry")
_GONE = (ActorDiedError, ActorUnavailableError)


class ChatRegistry:
    """Routes calls to `chat:<chat_id>` actors in namespace `chatservice`, from any node.

    A call that reaches a dead or passivated actor is retried once against a fresh
    activation; turn ids make that retry safe (begin/complete are idempotent per turn).
    """

    def __init__(self, config: ActorConfig, cache_size: int = 10_000) -> None:
        self._config = config
        self._cache_size = cache_size
        self._handles: OrderedDict[str, Any] = OrderedDict()

    async def _handle(self, chat_id: str) -> Any:
        handle = self._handles.get(chat_id)
        if handle is None:
            # get_if_exists asks the GCS synchronously; keep that wait off the event loop.
            handle = await asyncio.to_thread(self._get_or_create, chat_id)
            self._handles[chat_id] = handle
            while len(self._handles) > self._cache_size:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(chat_id)
        return handle

    def _get_or_create(self, chat_id: str) -> Any:
        return ConversationActor.options(  # type: ignore[attr-defined]
            name=actor_name(chat_id),
            namespace=NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            scheduling_strategy="SPREAD",  # conversations spread over the cluster's nodes
        ).remote(chat_id, self._config)

    async def call(self, chat_id: str, method: str, *args: Any) -> Any:
        for attempt in (1, 2):
            handle = await self._handle(chat_id)
            try:
                return await getattr(handle, method).remote(*args)
            except RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, ChatServiceError):
                    raise cause from None
                log.error("chat %s: %s failed: %r", chat_id, method, cause)
                raise Unavailable("the conversation failed unexpectedly; retry") from exc
            except _GONE:
                self._handles.pop(chat_id, None)
                if attempt == 2:
                    raise Unavailable("the conversation is restarting; retry shortly") from None
                log.info("chat %s: actor gone during %s, re-activating", chat_id, method)
        raise AssertionError("unreachable")

    def forget(self, chat_id: str) -> None:
        self._handles.pop(chat_id, None)

    async def begin_turn(self, chat_id: str, req: TurnRequest) -> TurnPlan | Recount:
        return cast(TurnPlan | Recount, await self.call(chat_id, "begin_turn", req))

    async def complete_turn(
        self, chat_id: str, turn_id: str, reply: str, tokens: int, finish: str
    ) -> TurnResult:
        result = await self.call(chat_id, "complete_turn", turn_id, reply, tokens, finish)
        return cast(TurnResult, result)

    async def abort_turn(
        self, chat_id: str, turn_id: str, partial: str, tokens: int, reason: str
    ) -> TurnResult:
        return cast(TurnResult, await self.call(chat_id, "abort_turn", turn_id, partial, tokens, reason))

    async def create(self, chat_id: str, user_id: str, new: NewChat) -> ChatRecord:
        return cast(ChatRecord, await self.call(chat_id, "create", user_id, new))

    async def describe(self, chat_id: str, user_id: str) -> tuple[ChatRecord, WindowInfo]:
        return cast(tuple[ChatRecord, WindowInfo], await self.call(chat_id, "describe", user_id))

    async def end(self, chat_id: str, user_id: str) -> ChatRecord:
        return cast(ChatRecord, await self.call(chat_id, "end", user_id))

    async def delete(self, chat_id: str, user_id: str) -> None:
        await self.call(chat_id, "delete", user_id)

    async def window_messages(self, chat_id: str) -> list[MessageRecord]:
        return cast(list[MessageRecord], await self.call(chat_id, "window_messages"))


def is_connected() -> bool:
    return bool(ray.is_initialized())
