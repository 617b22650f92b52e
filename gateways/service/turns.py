"""A turn, as both gateways and the WhatsApp bot run it: validate, count, begin, stream the answer, end it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from actors.port import Conversations
from actors.protocol import Edit, NewChat, Recount, Regenerate, TurnPlan, TurnRequest
from actors.ratelimit import KeyedRateLimit
from gateways import logs
from gateways.llm.calibration import Calibration
from gateways.llm.client import LLM, Delta, Finish
from gateways.llm.counting import TokenCounter
from gateways.service.answering import Answering
from gateways.service.cache import LRU
from gateways.service.coalesce import coalesced
from gateways.service.config import ServiceConfig
from gateways.service.endings import TurnEndings
from gateways.service.events import TurnDelta, TurnEvent, TurnStarted
from gateways.service.ids import check_chat_id, check_new_chat_id, check_user_id, new_chat_id
from gateways.service.leases import Leases
from gateways.service.owners import Owners
from gateways.service.params import ChatOverrides, apply_overrides, check_system_prompt
from gateways.service.report import TurnReport
from gateways.service.text import check_unicode, shows_something
from gateways.service.titles import Titles
from store.base import ChatStore
from store.errors import (
    ChatServiceError,
    InvalidArgument,
    MessageTooLarge,
    ResourceExhausted,
)
from store.records import ChatParams

T = TypeVar("T")
log = logging.getLogger("chatservice.service")
# Chat openings (a system prompt and parameters, counted once) this gateway remembers.
OPENINGS_CACHED = 64


@dataclass(frozen=True, slots=True)
class Extras:
    """What a gateway adds to a turn's user message beyond its text (WhatsApp media).

    `turn_id`: the turn's id, chosen first so that media rows can name it before the turn begins;
    `tokens`: counted on top of the text (its images); `prompt`: the plan as sent to the LLM
    (its images as content parts), applied to a prompt shrunk for a retry as well.
    """

    turn_id: str
    tokens: int = 0
    prompt: Callable[[TurnPlan], Awaitable[TurnPlan]] | None = None


class TurnService:
    """Turns for one gateway process, on the Conversations port; holds no chat state beyond caches."""

    def __init__(
        self,
        config: ServiceConfig,
        conversations: Conversations,
        llm: LLM,
        store: ChatStore,
        counter: TokenCounter | None = None,
    ) -> None:
        self._config = config
        self._conversations = conversations
        self._llm = llm
        self._store = store  # reads only: every write goes through the chat's actor
        self.counter = counter or TokenCounter()
        self._answering = Answering(llm, conversations, Calibration(), self.counter)
        self._owners = Owners(store)
        self._openings: LRU[tuple[str, ChatParams], NewChat] = LRU(OPENINGS_CACHED)
        self._user_turns = KeyedRateLimit(config.user_turns_per_minute)
        self._leases = Leases(conversations.renew_turn, config.turn_timeout_seconds)
        self._endings = TurnEndings(conversations, self.counter, self._leases)
        self.titles = Titles(llm, conversations, store, config.auto_title)

    @property
    def owners(self) -> Owners:
        return self._owners

    @property
    def store(self) -> ChatStore:
        return self._store

    @property
    def conversations(self) -> Conversations:
        return self._conversations

    def check_content(self, content: str) -> str:
        if not shows_something(content):  # also zero-width spaces, joiners, BOMs and the like alone
            raise InvalidArgument("user_message is empty: send some text")
        check_unicode("user_message", content)
        if len(content) > self._config.max_message_chars:
            raise MessageTooLarge(
                f"user_message is {len(content)} characters; at most "
                f"{self._config.max_message_chars} are accepted"
            )
        return content

    async def new_chat(self, overrides: ChatOverrides | None = None) -> NewChat:
        """How a chat is created: the defaults, or the defaults with a client's overrides."""
        o = overrides or ChatOverrides()
        params = apply_overrides(self._config.default_params, o)
        prompt = check_system_prompt(
            self._config.initial_chat_message if o.system_prompt is None else o.system_prompt
        )
        key = (prompt, params)
        known = self._openings.get(key)
        if known is None:
            tokens = await self.counter.message(params.model, "system", prompt) if prompt else 0
            known = self._openings.put(key, NewChat(params, prompt, tokens))
        return known

    async def turn(
        self,
        user_id: str,
        chat_id: str | None,
        content: str,
        *,
        create_missing: bool = True,
        whatsapp: bool = False,
        branch: Regenerate | Edit | None = None,
        extras: Extras | None = None,
    ) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn: the start, the answer's deltas, then the end (or an error).

        `whatsapp`: the Twilio webhook's turn, the only one allowed in a reserved `wa:` chat.
        `branch`: a regenerate (no content) or an edit of an existing chat (gateways/service/branching.py).
        """
        report = TurnReport(self._config.log_content)
        try:
            check_user_id(user_id)
            check = check_chat_id if whatsapp else check_new_chat_id
            chat_id = check(chat_id) if chat_id else new_chat_id()
            turn_id = extras.turn_id if extras else uuid.uuid4().hex
            logs.bind(chat_id=chat_id, turn_id=turn_id)
            if not isinstance(branch, Regenerate):
                self.check_content(content)
            self._check_user_rate(user_id)
            extra = extras.tokens if extras else 0
            plan = await self._begin(user_id, chat_id, content, create_missing, turn_id, branch, extra)
        except BaseException as exc:
            report.not_begun(exc)
            raise
        report.begun(plan, content)
        try:
            yield TurnStarted(chat_id, plan.user_message_id, plan.created, plan.evicted, plan.window)
        except BaseException:
            self._endings.spawn(self._endings.abort(chat_id, plan, "", "cancelled"))  # closed at its start
            report.cancelled()
            raise
        parts: list[str] = []
        finish = Finish("stop")
        try:
            rewrite = extras.prompt if extras is not None else None  # a failure aborts the turn
            # aclosing: a consumer that stops early (cancel, disconnect, deadline) closes the LLM
            # stream now, not whenever the garbage collector gets to it.
            answer = coalesced(self._answering.stream(chat_id, plan, rewrite), self._config.coalescing)
            async with aclosing(answer) as stream:
                async for event in stream:
                    if isinstance(event, Delta):
                        report.token()
                        parts.append(event.text)
                        yield TurnDelta(event.text)
                    elif isinstance(event, Finish):
                        finish = event
                    else:
                        plan = event  # shrunk for a retry: the server found the prompt too large
        except ChatServiceError as exc:
            # Shielded: counting the part (on the LLM server, perhaps) must not leave the chat held.
            await self._endings.unless_cancelled(self._endings.abort(chat_id, plan, "".join(parts), "error"))
            report.llm_failed(exc)
            raise
        except BaseException:
            # Cancelled or abandoned by the client: free the chat without waiting for it.
            self._endings.spawn(self._endings.abort(chat_id, plan, "".join(parts), "cancelled"))
            report.cancelled()
            raise
        try:
            # Shielded: a client gone after the last delta still has its answer stored.
            result, tokens = await self._endings.unless_cancelled(
                self._endings.complete(chat_id, plan, "".join(parts), finish)
            )
        except BaseException as exc:
            report.not_stored(exc)
            raise
        finished = await self._answering.finished(plan, result, tokens, finish)
        report.completed(
            finished.finish_reason, finished.prompt_tokens, finished.completion_tokens, "".join(parts)
        )
        if finished.assistant_message_id is not None:
            self._endings.spawn(self.titles.after_turn(user_id, chat_id, plan))
        yield finished

    async def answer(
        self, user_id: str, chat_id: str | None, content: str, *, whatsapp: bool = False
    ) -> tuple[str, str]:
        """Run a turn to the end: (chat_id, the whole answer)."""
        parts: list[str] = []
        started = None
        async for event in self.turn(user_id, chat_id, content, whatsapp=whatsapp):
            if isinstance(event, TurnStarted):
                started = event
            elif isinstance(event, TurnDelta):
                parts.append(event.text)
        assert started is not None
        return started.chat_id, "".join(parts)

    async def hold(self, user_id: str, chat_id: str, content: str, *, whatsapp: bool = False) -> int:
        """Store a user message and answer nothing (a WhatsApp burst's messages before its last).

        The turn begins (so the message is stored in order, in the window) and ends with no answer.
        Returns the message's id.
        """
        check_user_id(user_id)
        chat_id = (check_chat_id if whatsapp else check_new_chat_id)(chat_id)
        self.check_content(content)
        self._check_user_rate(user_id)
        plan = await self._begin(user_id, chat_id, content, True, uuid.uuid4().hex)
        await self._endings.unless_cancelled(self._endings.abort(chat_id, plan, "", "held"))
        return plan.user_message_id

    def _check_user_rate(self, user_id: str) -> None:
        wait = self._user_turns.admit(user_id, time.monotonic())
        if wait:
            raise ResourceExhausted(  # no user id: WhatsApp user ids are phone numbers, and get logged
                f"this user sent {self._user_turns.limit} messages in the last minute: "
                f"wait {wait:.0f} s before the next one"
            )

    async def _begin(
        self,
        user_id: str,
        chat_id: str,
        content: str,
        create_missing: bool,
        turn_id: str,
        branch: Regenerate | Edit | None = None,
        extra: int = 0,
    ) -> TurnPlan:
        known = await self._owners.check(user_id, chat_id, may_be_missing=create_missing)
        model = known.model if known else self._config.default_params.model
        create = await self.new_chat() if create_missing else None
        learned = self._answering.calibration
        for _ in range(3):
            regenerate = isinstance(branch, Regenerate)
            tokens = 0 if regenerate else await self.counter.message(model, "user", content) + extra
            correction, server_context = learned.correction(model), learned.server_context(model)
            req = TurnRequest(
                turn_id, user_id, content, tokens, model, create, correction, server_context, branch
            )
            plan = await self._begin_once(chat_id, req)
            if isinstance(plan, Recount):
                model = plan.model
                continue
            self._owners.remember(chat_id, user_id, plan.params.model)
            self._leases.keep(chat_id, plan.turn_id, plan.user_message_id)
            return plan
        raise AssertionError(f"chat {chat_id}: model kept changing while counting")

    async def _begin_once(self, chat_id: str, req: TurnRequest) -> TurnPlan | Recount:
        call = asyncio.ensure_future(self._conversations.begin_turn(chat_id, req))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # The client left before its turn began (it may be queued behind another one).
            self._endings.spawn(self._endings.withdraw(chat_id, req.turn_id, call))
            raise

    async def drain(self) -> None:
        """Wait for background aborts (at shutdown)."""
        await self._endings.drain()
