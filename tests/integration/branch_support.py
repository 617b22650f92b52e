"""Helpers for conversations over a message tree: requests of each kind, the store's view of a chat."""

from __future__ import annotations

import uuid

from actors.conversation import Conversation
from actors.protocol import Edit, NewChat, Regenerate, TurnPlan, TurnRequest
from store import ChatStore
from store.records import ChatParams, MessageRecord

MODEL = "gpt-4o-mini"
NEW = NewChat(ChatParams(MODEL, context_tokens=400, max_tokens=50), "sys", 10)


def ask(content: str, tokens: int = 10, user: str = "u1", create: NewChat | None = NEW) -> TurnRequest:
    """A new message after the active leaf (creating the chat with `create` if it has none)."""
    return TurnRequest(uuid.uuid4().hex, user, content, tokens, MODEL, create)


def edit(message_id: int, content: str, tokens: int = 10, user: str = "u1") -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, user, content, tokens, MODEL, branch=Edit(message_id))


def regenerate(message_id: int | None = None, user: str = "u1") -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, user, "", 0, MODEL, branch=Regenerate(message_id))


async def begin(c: Conversation, req: TurnRequest) -> TurnPlan:
    plan = await c.begin_turn(req)
    assert isinstance(plan, TurnPlan)
    return plan


async def turn(c: Conversation, req: TurnRequest, reply: str | None = None) -> TurnPlan:
    """Begin a turn and complete it with `reply` (by default 're: ' and the message answered)."""
    plan = await begin(c, req)
    answer = reply if reply is not None else f"re: {plan.messages[-1]['content']}"
    await c.complete_turn(plan.turn_id, answer, 5, "stop")
    return plan


async def two_turns(store: ChatStore, chat_id: str) -> Conversation:
    """1 sys ─ 2 q1 ─ 3 re: q1 ─ 4 q2 ─ 5 re: q2 (the active leaf)."""
    c = Conversation(chat_id, store, 60)
    await turn(c, ask("q1"))
    await turn(c, ask("q2", create=None))
    return c


def contents(messages: list[MessageRecord]) -> list[str]:
    return [m.content for m in messages]


def window(c: Conversation) -> list[tuple[int, str]]:
    return [(m.seq, m.content) for m in c.window_messages()]


async def rebuilt(store: ChatStore, chat_id: str) -> list[tuple[int, str]]:
    """The window an activation rebuilds from the store: the non-erased messages of the active path."""
    return [(m.seq, m.content) for m in await store.list_path(chat_id)]


async def tree(store: ChatStore, chat_id: str) -> list[tuple[int, int | None, str]]:
    """Every stored message, every branch, erased ones too: (seq, parent, content)."""
    stored = await store.list_messages(chat_id, include_erased=True)
    return [(m.seq, m.parent_seq, m.content) for m in stored]


async def leaf(store: ChatStore, chat_id: str) -> int | None:
    chat = await store.get_chat(chat_id)
    assert chat is not None
    return chat.active_leaf
