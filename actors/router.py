"""The Conversations port on Ray: chat_id -> actor, admitted by the directory, retried on death."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict
from typing import Any, cast

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from actors.actor import ActorConfig
from actors.directory import ChatDirectory, DirectoryConfig, actor_id
from actors.protocol import NewChat, Recount, TurnPlan, TurnRequest, TurnResult, WindowInfo
from store.errors import ChatServiceError, Passivating, Unavailable
from store.records import ChatRecord, MessageRecord

log = logging.getLogger("chatservice.router")
TOUCH_SECONDS = 1.0  # how often use is reported to the directory, in one batch
FIRST_RETRY_SECONDS = 0.05  # the pause before the first retry; it doubles up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 1.0
STARTING_NOTICE_SECONDS = 2.0
STARTING = "chat %s: waiting for its conversation actor (a new one is a Ray worker process to start)..."


class _Gone(Exception):
    """The actor reached is dead or passivating (`dead`), or out of reach for a moment (not `dead`)."""

    def __init__(self, why: str, dead: bool = True) -> None:
        super().__init__(why)
        self.dead = dead


class ConversationRouter:
    """The Conversations port (actors/port.py) on Ray: calls go to `chat:<chat_id>` actors, from any node.

    A chat with no live actor is admitted by the directory first (which may passivate idle
    chats to stay under the cap). A call that reaches a dead or passivating actor, or finds the
    directory restarting, is retried against a fresh activation with backoff for up to
    `wait_seconds` after the first failure (at least once): the client sees latency, not an
    error. Turn ids make that safe (begin, complete, abort, renew and withdraw are idempotent).
    """

    def __init__(
        self,
        config: ActorConfig,
        cap_per_node: int = 1000,
        wait_seconds: float = 10.0,
        evict_grace_seconds: float = 2.0,
        cache_size: int = 10_000,
    ) -> None:
        self._config = config
        self._directory_config = DirectoryConfig(
            config.namespace, cap_per_node, wait_seconds, evict_grace_seconds
        )
        self._cache_size = cache_size
        self._wait_seconds = wait_seconds
        self._handles: OrderedDict[str, Any] = OrderedDict()
        self._directory: Any = None
        self._touched: dict[str, None] = {}  # in order of last use, oldest first
        self._flusher: asyncio.Task[None] | None = None

    @property
    def directory(self) -> Any:
        if self._directory is None:
            self._directory = ChatDirectory.options(  # type: ignore[attr-defined]
                name=self._config.directory,
                namespace=self._config.namespace,
                get_if_exists=True,
                lifetime="detached",
            ).remote(self._directory_config)
        return self._directory

    async def _handle(self, chat_id: str, dead: str | None = None) -> Any:
        handle = self._handles.get(chat_id)
        if handle is not None and dead is None:
            self._handles.move_to_end(chat_id)
            self._touch(chat_id)
            return handle
        try:
            handle = await _unwrap(self.directory.admit.remote(chat_id, self._config, dead))
        except _Gone:
            raise _Restarting("the chat directory is restarting; retry shortly") from None
        except Unavailable as exc:  # the directory could not activate it yet (an old actor lingers)
            raise _Restarting(str(exc)) from None
        self._handles[chat_id] = handle
        self._handles.move_to_end(chat_id)
        while len(self._handles) > self._cache_size:
            self._handles.popitem(last=False)
        return handle

    def _touch(self, chat_id: str) -> None:
        self._touched.pop(chat_id, None)
        self._touched[chat_id] = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_touches())

    async def _flush_touches(self) -> None:
        while self._touched:
            await asyncio.sleep(TOUCH_SECONDS)
            batch, self._touched = list(self._touched), {}
            self.directory.touch.remote(batch)  # fire and forget: only the LRU order depends on it

    async def _call(self, chat_id: str, method: str, *args: Any) -> Any:
        # Counted from the first failure: an attempt that was slow (activating on a busy node)
        # and then found its actor dead still gets the whole wait to recover.
        deadline: float | None = None
        dead: str | None = None
        for attempt in itertools.count(1):
            fresh = dead is not None or chat_id not in self._handles
            # A new activation's first call waits for its process: say so when that takes long.
            notice = (
                asyncio.get_running_loop().call_later(STARTING_NOTICE_SECONDS, log.info, STARTING, chat_id)
                if fresh
                else None
            )
            try:
                handle = await self._handle(chat_id, dead)
                dead = None
                return await _unwrap(getattr(handle, method).remote(*args))
            except _Gone as gone:
                if gone.dead:
                    self._handles.pop(chat_id, None)
                    dead = actor_id(handle)
                why, problem = str(gone), Unavailable("the conversation is restarting; retry shortly")
            except _Restarting as exc:
                why, problem = str(exc), Unavailable(str(exc))
            finally:
                if notice is not None:
                    notice.cancel()
            pause = _backoff(attempt)
            deadline = deadline or time.monotonic() + self._wait_seconds
            if attempt > 1 and time.monotonic() + pause > deadline:
                log.warning("chat %s: %s failed %d times, last: %s", chat_id, method, attempt, why)
                raise problem
            log.info("chat %s: %s during %s, retrying (attempt %d)", chat_id, why, method, attempt)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # itertools.count never ends; mypy wants a return

    def forget(self, chat_id: str) -> None:
        self._handles.pop(chat_id, None)

    async def live_chats(self) -> list[str]:
        """Chats with a live actor, least recently used first (as the directory knows them)."""
        return cast(list[str], await self.directory.live_chats.remote())

    async def passivate_all(self) -> int:
        """Passivate every idle conversation actor (when the service that owns Ray shuts down)."""
        return cast(int, await self.directory.passivate_all.remote())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()

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

    async def stats(self, chat_id: str) -> dict[str, object]:
        """The footprint of the chat's actor process (operators, the benchmark)."""
        return cast(dict[str, object], await self._call(chat_id, "stats"))


class _Restarting(Exception):
    """The directory could not hand out an activation just now."""


def _backoff(attempt: int) -> float:
    """Exponential, with jitter so that the callers of one dead actor do not retry in step."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)


async def _unwrap(ref: Any) -> Any:
    """Await a Ray call: our errors come back as themselves, a dead actor as _Gone."""
    try:
        return await ref
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Passivating):
            raise _Gone("its actor is passivating") from None
        if isinstance(cause, ChatServiceError):
            raise cause from None
        # The type only: the message of an unexpected error may quote the chat's text.
        log.error("a conversation call failed: %s", type(cause).__name__)
        raise Unavailable("the conversation failed unexpectedly; retry") from exc
    except ActorDiedError as exc:
        raise _Gone(f"its actor died ({_first_line(exc)})") from None
    except ActorUnavailableError as exc:
        # Maybe alive (a busy node): the same actor is tried again.
        raise _Gone(f"its actor is out of reach ({_first_line(exc)})", dead=False) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def is_connected() -> bool:
    return bool(ray.is_initialized())
