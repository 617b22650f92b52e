"""The served process over a message tree: turns write a chain, the next turn follows the active path."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from store import DatabaseURL, open_store
from store.records import MessageRecord, Role, SearchHit
from tests.e2e.test_serve import post
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]


async def branch_beside_last_answer(url: DatabaseURL, chat_id: str) -> int:
    """Store another answer beside the chat's last one and make it the active leaf (a regenerate)."""
    store = open_store(url)
    try:
        chat = await store.get_chat(chat_id)
        assert chat is not None
        last = (await store.list_path(chat_id))[-1]
        again = replace(last, seq=await store.last_seq(chat_id) + 1, content="Another answer.", turn_id=None)
        await store.write(chat_id, chat.version, append=[again])
        return again.seq
    finally:
        await store.close()


async def stored(
    url: DatabaseURL, chat_id: str, user: str
) -> tuple[list[MessageRecord], list[MessageRecord], list[SearchHit]]:
    store = open_store(url)
    try:
        everything = await store.list_messages(chat_id, include_erased=True)
        path = await store.list_path(chat_id)
        hits = await store.search_chats(user, "Lisboa", 10)
        return everything, path, hits
    finally:
        await store.close()


def test_served_turns_follow_the_active_path_of_the_tree(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    user = f"tree-{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "AUTH_TOKEN": "tok",
        "MODEL": "gpt-4o-mini",
        "INITIAL_CHAT_MESSAGE": "Be brief.",
    }
    with ServeProcess(env) as serve:
        status, first = post(
            f"{serve.url}/chat", {"user_id": user, "user_message": "Onde fica Lisboa?"}, "tok"
        )
        assert status == 200
        chat_id = first["chat_id"]
        # The chat's live actor holds its window; the store gets a new branch behind its back.
        branch = asyncio.run(branch_beside_last_answer(mysql_url, chat_id))
        status, second = post(
            f"{serve.url}/chat", {"chat_id": chat_id, "user_id": user, "user_message": "E o Porto?"}, "tok"
        )
        assert (status, second["content"]) == (200, "Echo: E o Porto?")
    sent = [(m["role"], m["content"]) for m in fake_llm.records[-1].body["messages"]]
    assert sent[-3:] == [
        ("user", "Onde fica Lisboa?"),
        ("assistant", "Another answer."),
        ("user", "E o Porto?"),
    ]

    everything, path, hits = asyncio.run(stored(mysql_url, chat_id, user))
    assert [(m.seq, m.parent_seq) for m in everything] == [(1, None), (2, 1), (3, 2), (4, 2), (5, 4), (6, 5)]
    assert branch == 4 and [m.seq for m in path] == [1, 2, 4, 5, 6]
    assert (path[-2].role, path[-2].content, path[-1].role) == (Role.USER, "E o Porto?", Role.ASSISTANT)
    assert [(h.chat.id, h.seq) for h in hits] == [
        (chat_id, 3)
    ]  # the echoed answer: served writes are indexed
