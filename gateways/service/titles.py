"""Automatic titles: after a chat's first exchange, a short title asked of the LLM in the background."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from actors.branches import renamed_title
from actors.protocol import TurnPlan
from actors.state import TITLE_CHARS, chat_title
from gateways.llm.client import LLM, Delta
from store.base import ChatStore
from store.errors import ChatServiceError

if TYPE_CHECKING:
    from actors.port import Conversations

log = logging.getLogger("chatservice.titles")
_WRAPPING = " \t\"'`“”‘’«»*#"  # quotes and markdown a model may wrap its title in
TITLE_MAX_TOKENS = 24
ASK = (
    "Write a short title (at most six words) for a conversation that begins with the user's "
    "message below, in the message's language. Answer with the title alone: no quotes, no period."
)


class Titles:
    """Retitles a chat the user has not named once its first answer is stored; never fails a turn.

    The conversation titles a chat with its first message's words when it gets it (that stays,
    offline or when the LLM fails); the LLM's title replaces it only while it is still that one.
    """

    def __init__(self, llm: LLM, conversations: Conversations, store: ChatStore, enabled: bool) -> None:
        self._llm = llm
        self._conversations = conversations
        self._store = store
        self._enabled = enabled

    async def after_turn(self, user_id: str, chat_id: str, plan: TurnPlan) -> None:
        try:
            await self._retitle(user_id, chat_id, plan)
        except ChatServiceError as exc:
            log.warning("chat %s: no automatic title: %s", chat_id, exc.message)
        except Exception as exc:  # a title is a nicety: whatever went wrong, the chat keeps its own
            log.warning("chat %s: no automatic title: %s", chat_id, type(exc).__name__)

    async def _retitle(self, user_id: str, chat_id: str, plan: TurnPlan) -> None:
        first = _first_exchange(plan)
        if not self._enabled or first is None:
            return
        chat = await self._store.get_chat(chat_id)
        if chat is None or chat.title != chat_title(first):
            return  # named by the user (or already retitled)
        title = await self._ask(plan, first)
        if title and title != chat.title:
            await self._conversations.rename(chat_id, user_id, title, if_title=chat.title)

    async def _ask(self, plan: TurnPlan, first: str) -> str:
        asking = replace(
            plan,
            messages=({"role": "system", "content": ASK}, {"role": "user", "content": first}),
            params=replace(plan.params, max_tokens=TITLE_MAX_TOKENS, stop=(), n=1),
        )
        parts = [event.text async for event in self._llm.stream(asking) if isinstance(event, Delta)]
        return cleaned("".join(parts))


def _first_exchange(plan: TurnPlan) -> str | None:
    """The user message of a turn that is the first of its path, or None."""
    users = [m for m in plan.messages if m.get("role") == "user"]
    last = plan.messages[-1] if plan.messages else None
    if len(users) != 1 or last is not users[0] or not isinstance(last["content"], str):
        return None
    return last["content"]


def cleaned(answer: str) -> str:
    """The model's title as stored: its first line, unquoted, at most TITLE_CHARS; '' if unusable."""
    line = next((s for s in answer.strip().splitlines() if s.strip()), "")
    line = re.sub(r"^(title|título)\s*:\s*", "", line.strip(), flags=re.I)
    line = line.strip(_WRAPPING).rstrip(".").strip(_WRAPPING)
    try:
        return chat_title(renamed_title(line))[:TITLE_CHARS]
    except ChatServiceError:
        return ""
