"""The Conversations port's contract, run alike on the Ray router and on LocalConversations, on both stores."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from actors.inprocess import LocalConfig, LocalConversations
from actors.port import Conversations
from actors.protocol import Edit, NewChat, Recount, Regenerate, TurnPlan, TurnRequest
from store import DatabaseURL, open_store
from store.errors import FailedPrecondition, NotFound, PermissionDenied
from store.records import ChatParams, ChatStatus, MessageStatus, Role

MODEL = "gpt-4o-mini"
HOST_NAMESPACES: dict[str, str] = {}
NEW = NewChat(ChatParams(MODEL, context_tokens=200, max_tokens=50), "sys", 10)


@pytest.fixture(
    params=[
        "local",
        pytest.param("ray", marks=pytest.mark.ray),
        pytest.param("hosted", marks=pytest.mark.ray),
    ]
)
async def conversations(request: pytest.FixtureRequest, db_url: DatabaseURL) -> AsyncIterator[Conversations]:
    store = open_store(db_url, pool_size=2)
    port: Conversations
    if request.param == "ray":
        request.getfixturevalue("ray_session")
        from actors.actor import ActorConfig
        from actors.router import ConversationRouter

        port = ConversationRouter(ActorConfig(db_url, turn_timeout=60, idle_seconds=600))
    elif request.param == "hosted":
        request.getfixturevalue("ray_session")
        from actors.host import HostConfig
        from actors.hosts import HostedRouter

        # A namespace per database: its two hosts serve every test on it, and only those.
        namespace = HOST_NAMESPACES.setdefault(db_url.to_url(), f"port-{uuid.uuid4().hex[:8]}")
        config = HostConfig(db_url, 2, LocalConfig(turn_timeout=60), 600, hosts=2, namespace=namespace)
        port = HostedRouter(config)
        await port.start()
    else:
        port = LocalConversations(store, LocalConfig(turn_timeout=60))
    yield port
    await port.close()
    await store.close()


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def ask(user: str, content: str, *, model: str = MODEL, create: NewChat | None = NEW) -> TurnRequest:
    return TurnRequest(uuid.uuid4().hex, user, content, 12, model, create)


async def begun(port: Conversations, chat_id: str, req: TurnRequest) -> TurnPlan:
    plan = await port.begin_turn(chat_id, req)
    assert isinstance(plan, TurnPlan)
    return plan


async def test_a_turn_creates_the_chat_completes_once_and_is_described(
    conversations: Conversations, chat_id: str, user: str
) -> None:
    req = ask(user, "hello")
    plan = await begun(conversations, chat_id, req)
    assert (
        plan.created and plan.chat_id == chat_id and plan.messages[-1] == {"role": "user", "content": "hello"}
    )
    assert await conversations.begin_turn(chat_id, req) == plan  # a retried begin gets the same plan
    result = await conversations.complete_turn(chat_id, plan.turn_id, "hi there", 5, "stop", 40)
    again = await conversations.complete_turn(chat_id, plan.turn_id, "hi there", 5, "stop", 40)
    assert again == result and result.status is MessageStatus.COMPLETE  # idempotent: stored once
    chat, window = await conversations.describe(chat_id, user)
    assert chat.user_id == user and chat.title == "hello" and chat.status is ChatStatus.ACTIVE
    assert window.messages == 3 and window.server_prompt_tokens == 40
    seen = await conversations.window_messages(chat_id)
    assert [(m.role, m.content) for m in seen] == [
        (Role.SYSTEM, "sys"),
        (Role.USER, "hello"),
        (Role.ASSISTANT, "hi there"),
    ]
    other_model = await conversations.begin_turn(chat_id, ask(user, "next", model="gpt-4"))
    assert other_model == Recount(MODEL)


async def test_turns_queue_one_at_a_time_and_a_withdrawn_one_stores_nothing(
    conversations: Conversations, chat_id: str, user: str
) -> None:
    first = await begun(conversations, chat_id, ask(user, "first"))
    second = asyncio.ensure_future(conversations.begin_turn(chat_id, ask(user, "second")))
    leaving = ask(user, "never mind")
    third = asyncio.ensure_future(conversations.begin_turn(chat_id, leaving))
    await conversations.renew_turn(chat_id, first.turn_id)
    assert not second.done()  # it cannot begin while the first holds the chat
    await conversations.withdraw_turn(chat_id, leaving.turn_id)
    partial = await conversations.abort_turn(chat_id, first.turn_id, "half an ans", 3, "cancelled")
    assert partial.status is MessageStatus.INTERRUPTED
    plan = await second
    assert isinstance(plan, TurnPlan)
    await conversations.complete_turn(chat_id, plan.turn_id, "second answer", 5, "stop")
    with pytest.raises(FailedPrecondition):
        await third
    contents = [m.content for m in await conversations.window_messages(chat_id)]
    assert contents == ["sys", "first", "half an ans", "second", "second answer"]


async def test_branches_shrink_rename_and_the_chats_lifecycle(
    conversations: Conversations, chat_id: str, user: str
) -> None:
    first = await begun(conversations, chat_id, ask(user, "q1"))
    await conversations.complete_turn(chat_id, first.turn_id, "a1", 5, "stop")
    edit = TurnRequest("t-edit", user, "q1 again", 12, MODEL, branch=Edit(first.user_message_id))
    plan = await begun(conversations, chat_id, edit)
    shrunk = await conversations.shrink_turn(chat_id, "t-edit", 1, plan.user_message_id)
    assert shrunk.turn_id == "t-edit"
    await conversations.complete_turn(chat_id, "t-edit", "a1 again", 5, "stop", None, plan.user_message_id)
    regen = await begun(
        conversations, chat_id, TurnRequest("t-regen", user, "", 0, MODEL, branch=Regenerate())
    )
    await conversations.complete_turn(chat_id, "t-regen", "a1 third", 5, "stop", None, regen.user_message_id)
    _, window = await conversations.switch(chat_id, user, first.user_message_id)
    assert window.messages == 3
    assert [m.content for m in await conversations.window_messages(chat_id)] == ["sys", "q1", "a1"]
    assert (await conversations.rename(chat_id, user, "Named")).title == "Named"
    assert (await conversations.end(chat_id, user)).status is ChatStatus.ENDED
    with pytest.raises(FailedPrecondition):
        await conversations.begin_turn(chat_id, ask(user, "still there?"))
    await conversations.delete(chat_id, user)
    with pytest.raises(NotFound):
        await conversations.describe(chat_id, user)


async def test_only_the_owner_reaches_a_chat_and_unknown_chats_are_not_found(
    conversations: Conversations, chat_id: str, user: str
) -> None:
    created = await conversations.create(chat_id, user, NEW)
    assert created.id == chat_id and created.user_id == user
    for call in (
        conversations.describe(chat_id, "intruder"),
        conversations.rename(chat_id, "intruder", "mine"),
        conversations.end(chat_id, "intruder"),
        conversations.delete(chat_id, "intruder"),
        conversations.begin_turn(chat_id, ask("intruder", "let me in")),
    ):
        with pytest.raises(PermissionDenied):
            await call
    with pytest.raises(NotFound):
        await conversations.describe(f"{chat_id}-none", user)
    with pytest.raises(NotFound):
        await conversations.begin_turn(f"{chat_id}-none", ask(user, "hi", create=None))
    assert (await conversations.describe(chat_id, user))[0].status is ChatStatus.ACTIVE
