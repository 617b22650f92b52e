"""The service layer on in-process conversations, SQLite and MariaDB, the LLM test server: chats, paging."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from actors.inprocess import LocalConversations
from gateways.serve import Runtime, build_runtime
from gateways.service.chats import ChatService
from gateways.service.events import TurnDelta, TurnFinished, TurnStarted
from gateways.service.params import ChatOverrides
from gateways.settings import Settings
from store import DatabaseURL
from store.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from store.records import ChatStatus, Role
from tests.llm_server import FakeLLM


@pytest.fixture
async def runtime(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[Runtime]:
    env = {
        "DATABASE_URL": db_url.to_url(),
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
    }
    runtime = build_runtime(
        Settings.from_env(env | {"MODEL_MAX_TOKENS": "400", "MAX_TOKENS": "100"}), in_process=True
    )
    yield runtime
    await runtime.close()


@pytest.fixture
def service(runtime: Runtime) -> ChatService:
    return runtime.service


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def say(service: ChatService, user: str, chat_id: str | None, text: str) -> list[object]:
    return [e async for e in service.turn(user, chat_id, text, create_missing=chat_id is None)]


async def test_a_turn_streams_start_deltas_and_finish(service: ChatService, user: str) -> None:
    events = await say(service, user, None, "one two three")
    start, *deltas, finish = events
    assert isinstance(start, TurnStarted) and start.created and start.user_message_id == 2
    assert "".join(d.text for d in deltas if isinstance(d, TurnDelta)) == "Echo: one two three"
    assert isinstance(finish, TurnFinished) and finish.assistant_message_id == 3
    # The fake server counts prompts as OpenAI does: the window's own count, reported as usage.
    assert (finish.finish_reason, finish.prompt_tokens, finish.completion_tokens) == (
        "stop",
        start.window.tokens,
        4,
    )
    assert finish.usage_source == "server"
    assert finish.window.messages == 3


async def test_create_with_overrides_then_get_end_and_delete(service: ChatService, user: str) -> None:
    chat, window = await service.create_chat(
        user, ChatOverrides(model="gpt-4", system_prompt="Be terse.", temperature=0.1, max_tokens=200)
    )
    assert (chat.params.model, chat.params.context_tokens, chat.params.max_tokens) == ("gpt-4", 8192, 200)
    assert window.messages == 1 and window.context_tokens == 8192
    events = await say(service, user, chat.id, "hi")
    assert isinstance(events[-1], TurnFinished)
    got, _ = await service.get_chat(user, chat.id)
    assert got.title == "hi" and got.params.temperature == 0.1
    with pytest.raises(PermissionDenied):
        await service.get_chat("someone-else", chat.id)
    assert (await service.end_chat(user, chat.id)).status is ChatStatus.ENDED
    with pytest.raises(FailedPrecondition):
        await say(service, user, chat.id, "again")
    await service.delete_chat(user, chat.id)
    with pytest.raises(NotFound):
        await service.get_chat(user, chat.id)
    with pytest.raises(NotFound):
        await service.list_messages(user, chat.id)


async def test_v1_turns_do_not_create_missing_chats(service: ChatService, user: str) -> None:
    with pytest.raises(NotFound):
        await say(service, user, f"missing-{uuid.uuid4().hex}", "hello?")


async def test_bad_overrides_and_ids_are_invalid_arguments(service: ChatService, user: str) -> None:
    with pytest.raises(InvalidArgument, match="temperature"):
        await service.create_chat(user, ChatOverrides(temperature=9))
    with pytest.raises(InvalidArgument, match="chat_id"):
        await service.get_chat(user, "../etc/passwd")
    with pytest.raises(InvalidArgument, match="user_id"):
        await service.list_chats("")


async def test_a_users_chats_list_newest_first_across_pages(service: ChatService, user: str) -> None:
    made = [(await service.create_chat(user))[0].id for _ in range(5)]
    await service.create_chat("another-user")
    seen: list[str] = []
    token = ""
    for _ in range(3):
        page, token = await service.list_chats(user, page_size=2, page_token=token)
        seen += [c.id for c in page]
    assert seen == made[::-1] and token == ""
    with pytest.raises(InvalidArgument, match="page_token"):
        await service.list_chats(user, page_token="garbage!")


async def test_messages_list_in_order_with_or_without_erased(service: ChatService, user: str) -> None:
    chat_id = None
    for i in range(8):  # 400-token window, 100 reserved: these turns force evictions
        events = await say(service, user, chat_id, f"message number {i} " + "pad " * 20)
        start = events[0]
        assert isinstance(start, TurnStarted)
        chat_id = start.chat_id
    assert chat_id is not None
    visible, _ = await service.list_messages(user, chat_id)
    everything, _ = await service.list_messages(user, chat_id, include_erased=True)
    assert len(everything) == 17 and len(visible) < len(everything)
    assert [m.seq for m in everything] == list(range(1, 18))
    assert visible[0].role is Role.SYSTEM and all(not m.erased for m in visible)
    assert any(m.erased for m in everything)
    first, token = await service.list_messages(user, chat_id, include_erased=True, page_size=10)
    rest, end = await service.list_messages(
        user, chat_id, include_erased=True, page_size=10, page_token=token
    )
    assert [m.seq for m in first + rest] == list(range(1, 18)) and end == ""
    with pytest.raises(PermissionDenied):
        await service.list_messages("intruder", chat_id)


async def test_a_user_over_their_turns_per_minute_is_told_to_wait(
    db_url: DatabaseURL, fake_llm: FakeLLM, user: str
) -> None:
    env = {
        "DATABASE_URL": db_url.to_url(),
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
    }
    runtime = build_runtime(Settings.from_env(env | {"USER_TURNS_PER_MINUTE": "2"}), in_process=True)
    try:
        service = runtime.service
        await say(service, user, None, "one")
        await say(service, user, None, "two")  # a second chat: the limit is the user's, not the chat's
        with pytest.raises(ResourceExhausted, match=r"2 messages in the last minute: wait \d+ s"):
            await say(service, user, None, "three")
        await say(service, f"{user}-other", None, "another user is not limited by it")
        assert len(fake_llm.records) == 3
    finally:
        await runtime.close()


async def test_unknown_and_foreign_chats_are_refused_without_activating_an_actor(
    runtime: Runtime, user: str
) -> None:
    service = runtime.service
    assert isinstance(runtime.conversations, LocalConversations)
    theirs, _ = await service.create_chat("the-owner")
    loaded = runtime.conversations.loaded
    missing = f"missing-{uuid.uuid4().hex}"
    for call in (service.get_chat, service.end_chat, service.delete_chat):
        with pytest.raises(NotFound):
            await call(user, missing)
    with pytest.raises(NotFound):
        await say(service, user, missing, "hello?")
    with pytest.raises(PermissionDenied):
        await service.get_chat(user, theirs.id)
    assert runtime.conversations.loaded == loaded  # refused before any conversation was reached


async def test_unique_system_prompts_do_not_grow_the_gateway_without_bound(service: ChatService) -> None:
    import tracemalloc

    words = " ".join(f"word{i}" for i in range(2_500))  # about 20,000 characters

    async def prompts(start: int, stop: int) -> None:
        for i in range(start, stop):
            opening = await service.new_chat(ChatOverrides(system_prompt=f"prompt {i}: {words}"))
            assert opening.system_tokens > 2_500

    tracemalloc.start()
    try:
        await prompts(0, 100)  # the cache is full from here on
        before, _ = tracemalloc.get_traced_memory()
        await prompts(100, 500)  # 8 MB more of prompts, had each been kept
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1_000_000, f"{(after - before) / 1e6:.1f} MB kept for 400 prompts"
