"""chatservice.v1.ChatService over a real grpc.aio server: turns as events, chats, messages, paging."""

from __future__ import annotations

import uuid

import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from tests.grpc_support import MakeServer, make_server, original_proto, turn_events
from tests.llm_server import FakeLLM

__all__ = ["make_server", "original_proto"]

SMALL_WINDOW = {"MODEL_MAX_TOKENS": "400", "MAX_TOKENS": "100"}


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_a_turn_streams_started_deltas_and_finished(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    started, *deltas, finished = await turn_events(served, user, "one two three")
    assert started.WhichOneof("event") == "started" and finished.WhichOneof("event") == "finished"
    s, f = started.started, finished.finished
    assert s.chat_id and s.user_message_id == 2 and s.chat_created
    assert s.window.message_count == 2 and s.window.context_tokens == 128_000
    assert "".join(d.delta.text for d in deltas) == "Echo: one two three"
    assert f.assistant_message_id == 3 and f.finish_reason == pb.FINISH_REASON_STOP
    # The fake server counts the prompt as OpenAI does (the window's count) and reports it.
    assert (f.usage.prompt_tokens, f.usage.completion_tokens) == (s.window.token_count, 4)
    assert f.usage.total_tokens == s.window.token_count + 4 and f.usage.source == pb.USAGE_SOURCE_SERVER
    assert f.window.server_prompt_tokens == s.window.token_count and f.window.correction == 1.0
    assert f.evicted_messages == 0 and f.window.message_count == 3
    again = await turn_events(served, user, "more", s.chat_id)
    assert not again[0].started.chat_created and again[0].started.user_message_id == 4


async def test_evictions_are_reported_in_the_finished_event(make_server: MakeServer, user: str) -> None:
    served = await make_server(**SMALL_WINDOW)
    chat_id, evicted = "", []
    for i in range(6):
        events = await turn_events(served, user, f"message {i} " + "pad " * 30, chat_id)
        chat_id = events[0].started.chat_id
        evicted.append(events[-1].finished.evicted_messages)
        assert events[0].started.window.token_count + 100 <= 400  # room kept for the answer
    assert evicted[0] == 0 and sum(evicted) > 0
    response = await served.v1.ListMessages(
        pb.ListMessagesRequest(user_id=user, chat_id=chat_id, include_erased=True)
    )
    assert sum(m.erased for m in response.messages) == sum(evicted)


async def test_create_with_overrides_reaches_the_llm(
    make_server: MakeServer, user: str, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    params = pb.ChatParameters(
        model="gpt-4",
        system_prompt="Be terse.",
        temperature=0.2,
        top_p=0.9,
        max_tokens=200,
        stop=["END"],
        presence_penalty=0.5,
        frequency_penalty=-0.5,
    )
    chat = await served.v1.CreateChat(pb.CreateChatRequest(user_id=user, parameters=params))
    p = chat.parameters
    assert (p.model, p.max_tokens, list(p.stop)) == ("gpt-4", 200, ["END"])
    assert (p.temperature, p.top_p, p.presence_penalty, p.frequency_penalty) == (0.2, 0.9, 0.5, -0.5)
    assert chat.state == pb.CHAT_STATE_ACTIVE and chat.window.context_tokens == 8192
    assert chat.window.message_count == 1 and chat.user_id == user and chat.create_time.seconds > 0
    await turn_events(served, user, "hi", chat.chat_id)
    body = fake_llm.records[-1].body
    assert body["model"] == "gpt-4" and body["max_tokens"] == 200 and body["stop"] == ["END"]
    assert (body["temperature"], body["top_p"], body["presence_penalty"]) == (0.2, 0.9, 0.5)
    assert body["frequency_penalty"] == -0.5
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}


async def test_a_chosen_id_once_then_already_exists(make_server: MakeServer, user: str, chat_id: str) -> None:
    served = await make_server()
    chat = await served.v1.CreateChat(pb.CreateChatRequest(user_id=user, chat_id=chat_id))
    assert chat.chat_id == chat_id and chat.parameters.model == "gpt-4o-mini"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.v1.CreateChat(pb.CreateChatRequest(user_id=user, chat_id=chat_id))
    assert info.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_list_a_users_chats_newest_first_a_page_at_a_time(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    made = [(await served.v1.CreateChat(pb.CreateChatRequest(user_id=user))).chat_id for _ in range(5)]
    await served.v1.CreateChat(pb.CreateChatRequest(user_id=f"other-{user}"))
    seen, token, pages = [], "", 0
    while True:
        page = await served.v1.ListChats(pb.ListChatsRequest(user_id=user, page_size=2, page_token=token))
        seen += [c.chat_id for c in page.chats]
        pages += 1
        assert all(c.user_id == user and not c.HasField("window") for c in page.chats)
        token = page.next_page_token
        if not token:
            break
    assert seen == made[::-1] and pages == 3


async def test_messages_in_order_with_and_without_erased_and_paged(
    make_server: MakeServer, user: str
) -> None:
    served = await make_server(**SMALL_WINDOW)
    chat_id = ""
    for i in range(6):
        chat_id = (await turn_events(served, user, f"message {i} " + "pad " * 30, chat_id))[0].started.chat_id
    visible = await served.v1.ListMessages(pb.ListMessagesRequest(user_id=user, chat_id=chat_id))
    everything, token = [], ""
    while True:
        page = await served.v1.ListMessages(
            pb.ListMessagesRequest(
                user_id=user, chat_id=chat_id, include_erased=True, page_size=5, page_token=token
            )
        )
        everything += page.messages
        token = page.next_page_token
        if not token:
            break
    assert [m.message_id for m in everything] == list(range(1, 14))
    assert [m.role for m in everything[:3]] == [pb.ROLE_SYSTEM, pb.ROLE_USER, pb.ROLE_ASSISTANT]
    assert everything[2].finish_reason == "stop" and everything[2].status == pb.MESSAGE_STATUS_COMPLETE
    assert len(visible.messages) < len(everything) and not any(m.erased for m in visible.messages)
    assert visible.messages[0].role == pb.ROLE_SYSTEM and visible.next_page_token == ""


async def test_end_then_delete(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    chat_id = (await turn_events(served, user, "hello"))[0].started.chat_id
    ended = await served.v1.EndChat(pb.EndChatRequest(user_id=user, chat_id=chat_id))
    assert ended.state == pb.CHAT_STATE_ENDED and ended.title == "hello"
    got = await served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=chat_id))
    assert got.state == pb.CHAT_STATE_ENDED and got.window.message_count == 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await turn_events(served, user, "again?", chat_id)
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "new chat" in (info.value.details() or "")
    await served.v1.DeleteChat(pb.DeleteChatRequest(user_id=user, chat_id=chat_id))
    for call in (
        served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=chat_id)),
        served.v1.ListMessages(pb.ListMessagesRequest(user_id=user, chat_id=chat_id)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_user_sees_and_uses_only_their_own_chats(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    chat_id = (await turn_events(served, user, "private"))[0].started.chat_id
    intruder = f"intruder-{user}"
    calls = [
        served.v1.GetChat(pb.GetChatRequest(user_id=intruder, chat_id=chat_id)),
        served.v1.ListMessages(pb.ListMessagesRequest(user_id=intruder, chat_id=chat_id)),
        served.v1.EndChat(pb.EndChatRequest(user_id=intruder, chat_id=chat_id)),
        served.v1.DeleteChat(pb.DeleteChatRequest(user_id=intruder, chat_id=chat_id)),
        turn_events(served, intruder, "let me in", chat_id),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    listed = await served.v1.ListChats(pb.ListChatsRequest(user_id=intruder))
    assert chat_id not in [c.chat_id for c in listed.chats]
    got = await served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=chat_id))
    assert got.state == pb.CHAT_STATE_ACTIVE
