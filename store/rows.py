"""Records to rows and back: the column lists and the mappers every SQL query of the store uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from store.records import ChatParams, ChatRecord, ChatStatus, MessageRecord, MessageStatus, Role
from store.search import keys

if TYPE_CHECKING:
    from store.sql import Row, Transaction

CHAT_COLUMNS = (
    "id, user_id, status, title, model, context_tokens, max_tokens, temperature, top_p, n, "
    "stop_json, presence_penalty, frequency_penalty, version, created_at, updated_at, active_leaf"
)
MESSAGE_COLUMNS = (
    "chat_id, seq, role, content, tokens, turn_id, status, finish_reason, erased, created_at, parent_seq"
)


def columns(names: str, table: str) -> str:
    """A column list qualified by a table alias, for joins."""
    return ", ".join(f"{table}.{name.strip()}" for name in names.split(","))


def _dt(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def chat_row(chat: ChatRecord) -> tuple[Any, ...]:
    """CHAT_COLUMNS' values, then the title's search keys."""
    p = chat.params
    return (
        chat.id,
        chat.user_id,
        chat.status.value,
        chat.title,
        p.model,
        p.context_tokens,
        p.max_tokens,
        p.temperature,
        p.top_p,
        p.n,
        json.dumps(list(p.stop)),
        p.presence_penalty,
        p.frequency_penalty,
        chat.version,
        chat.created_at,
        chat.updated_at,
        chat.active_leaf,
        keys(chat.title, chat.user_id),
    )


def chat_from(row: Row) -> ChatRecord:
    params = ChatParams(
        model=row[4],
        context_tokens=int(row[5]),
        max_tokens=int(row[6]),
        temperature=row[7],
        top_p=row[8],
        n=int(row[9]),
        stop=tuple(json.loads(row[10])),
        presence_penalty=row[11],
        frequency_penalty=row[12],
    )
    return ChatRecord(
        id=row[0],
        user_id=row[1],
        status=ChatStatus(row[2]),
        title=row[3],
        params=params,
        version=int(row[13]),
        created_at=_dt(row[14]),
        updated_at=_dt(row[15]),
        active_leaf=None if row[16] is None else int(row[16]),
    )


def message_row(m: MessageRecord, owner: str) -> tuple[Any, ...]:
    """MESSAGE_COLUMNS' values, then the content's search keys (`owner`: the chat's user)."""
    return (
        m.chat_id,
        m.seq,
        m.role.value,
        m.content,
        m.tokens,
        m.turn_id,
        m.status.value,
        m.finish_reason,
        int(m.erased),
        m.created_at,
        m.parent_seq,
        keys(m.content, owner),
    )


def message_from(row: Row) -> MessageRecord:
    return MessageRecord(
        chat_id=row[0],
        seq=int(row[1]),
        role=Role(row[2]),
        content=row[3],
        tokens=int(row[4]),
        turn_id=row[5],
        status=MessageStatus(row[6]),
        finish_reason=row[7],
        erased=bool(row[8]),
        created_at=_dt(row[9]),
        parent_seq=None if row[10] is None else int(row[10]),
    )


def placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


async def insert_chat(tx: Transaction, chat: ChatRecord) -> None:
    await tx.execute(
        f"INSERT INTO chats ({CHAT_COLUMNS}, title_keys) VALUES ({placeholders(18)})", chat_row(chat)
    )


async def insert_messages(tx: Transaction, messages: Sequence[MessageRecord], owner: str) -> None:
    if messages:
        await tx.executemany(
            f"INSERT INTO messages ({MESSAGE_COLUMNS}, content_keys) VALUES ({placeholders(12)})",
            [message_row(m, owner) for m in messages],
        )
