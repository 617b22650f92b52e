"""What the benchmark sends and stores: chat ids, message texts, and seeded histories."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateways.llm.tokenizer import tokenizer_for
from store import DatabaseURL, open_store
from store.records import ChatParams, ChatRecord, MessageRecord, Role

SYSTEM_PROMPT = "You are a helpful assistant."
USERS = 50  # chats are spread over this many users


def chat_ids(prefix: str, n: int) -> list[tuple[str, str]]:
    """(user_id, chat_id) pairs for n chats."""
    return [(f"bench-user-{i % USERS}", f"{prefix}-{i:04d}") for i in range(n)]


def user_text(n: int) -> str:
    return f"Message {n}: tell me one more short thing about the weather in Lisbon today, please."


def answer_text(n: int) -> str:
    return f"Answer {n}: mild and sunny, around twenty degrees, with a light breeze from the sea."


def history(length: int) -> list[dict[str, str]]:
    """A chat's first `length` messages: the system prompt, then user and assistant in turn."""
    out = [{"role": "system", "content": SYSTEM_PROMPT}]
    for i in range(1, length):
        out.append(
            {"role": "user", "content": user_text(i)}
            if i % 2
            else {"role": "assistant", "content": answer_text(i)}
        )
    return out[:length]


async def seed_chats(
    url: DatabaseURL, params: ChatParams, chats: Sequence[tuple[str, str]], length: int
) -> None:
    """Store chats of `length` messages as the service would have, through the store's own interface."""
    tok = tokenizer_for(params.model)
    messages = history(length)
    counted = [tok.count_message(m["role"], m["content"]) for m in messages]
    store = open_store(url, pool_size=4)
    try:
        sem = asyncio.Semaphore(4)

        async def one(user_id: str, chat_id: str) -> None:
            records = [
                MessageRecord(chat_id, i + 1, Role(m["role"]), m["content"], counted[i])
                for i, m in enumerate(messages)
            ]
            async with sem:
                await store.create_chat(
                    ChatRecord(id=chat_id, user_id=user_id, params=params, title="bench"), records
                )

        await asyncio.gather(*(one(u, c) for u, c in chats))
    finally:
        await store.close()
