"""pb.ChatService/ChatStream through stubs compiled from the original proto, against a real server."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from types import ModuleType

import grpc
import pytest

from store import DatabaseURL
from store.records import MessageStatus, Role
from tests.grpc_support import MakeServer, eventually, make_server, original_proto, stored
from tests.llm_server import FakeLLM, words_reply

__all__ = ["make_server", "original_proto"]

Proto = tuple[ModuleType, ModuleType]


async def chat_stream(
    served: object, proto: Proto, user: str, text: str, chat_id: str | None = None
) -> list[object]:
    chat_pb2 = proto[0]
    request = chat_pb2.ChatRequest(user_id=user, user_message=text)
    if chat_id is not None:
        request.chat_id = chat_id
    return [r async for r in served.legacy.ChatStream(request)]  # type: ignore[attr-defined]


def assert_cumulative(responses: list[object], chat_id: str, user: str, answer: str) -> None:
    contents = [r.content for r in responses]  # type: ignore[attr-defined]
    assert len(contents) > 1, "the answer should arrive in several responses"
    assert contents[-1] == answer
    for before, after in itertools.pairwise(contents):
        assert after.startswith(before) and len(after) > len(before)
    assert {(r.chat_id, r.user_id) for r in responses} == {(chat_id, user)}  # type: ignore[attr-defined]


async def test_a_two_turn_conversation_with_cumulative_content(
    make_server: MakeServer, original_proto: Proto, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    first = await chat_stream(served, original_proto, "u1", "Qual é a capital do Brasil?")
    chat_id = first[0].chat_id  # type: ignore[attr-defined]
    assert chat_id
    assert_cumulative(first, chat_id, "u1", "Echo: Qual é a capital do Brasil?")
    second = await chat_stream(served, original_proto, "u1", "E da Argentina?", chat_id)
    assert_cumulative(second, chat_id, "u1", "Echo: E da Argentina?")
    assert [m["content"] for m in fake_llm.records[-1].body["messages"]][1:] == [
        "Qual é a capital do Brasil?",
        "Echo: Qual é a capital do Brasil?",
        "E da Argentina?",
    ]
    messages = await stored(db_url, chat_id)
    assert [(m.role, m.content) for m in messages][1:] == [
        (Role.USER, "Qual é a capital do Brasil?"),
        (Role.ASSISTANT, "Echo: Qual é a capital do Brasil?"),
        (Role.USER, "E da Argentina?"),
        (Role.ASSISTANT, "Echo: E da Argentina?"),
    ]


async def test_a_chat_id_that_does_not_exist_yet_is_created_with_it(
    make_server: MakeServer, original_proto: Proto, chat_id: str
) -> None:
    served = await make_server()
    responses = await chat_stream(served, original_proto, "whatsapp:+5511999990000", "oi", chat_id)
    assert_cumulative(responses, chat_id, "whatsapp:+5511999990000", "Echo: oi")


async def test_concurrent_streams_from_different_users_never_mix(
    make_server: MakeServer, original_proto: Proto, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    fake_llm.behaviour.token_delay = 0.02  # long enough for the streams to interleave
    users = [f"user-{i}-{uuid.uuid4().hex[:6]}" for i in range(6)]
    texts = {u: f"{u} asks " + " ".join(f"{u}-word{j}" for j in range(8)) for u in users}
    results = await asyncio.gather(*(chat_stream(served, original_proto, u, texts[u]) for u in users))
    chat_ids = set()
    for user, responses in zip(users, results, strict=True):
        chat_id = responses[0].chat_id  # type: ignore[attr-defined]
        chat_ids.add(chat_id)
        assert_cumulative(responses, chat_id, user, f"Echo: {texts[user]}")
    assert len(chat_ids) == len(users)


async def test_cancel_mid_stream_stops_the_llm_and_keeps_the_partial_answer(
    make_server: MakeServer, original_proto: Proto, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    served = await make_server()
    fake_llm.behaviour.reply = words_reply(400)
    fake_llm.behaviour.token_delay = 0.05  # 20 s for the whole answer: the cancel comes long before
    call = served.legacy.ChatStream(original_proto[0].ChatRequest(user_id="u1", user_message="tell me"))
    received = []
    async for response in call:
        received.append(response)
        if len(received) == 3:
            break
    call.cancel()
    assert await call.code() is grpc.StatusCode.CANCELLED
    record = fake_llm.records[-1]

    async def disconnected() -> bool:
        return record.disconnected

    assert await eventually(disconnected)
    assert not record.finished and record.chunks_sent < 400
    chat_id = received[0].chat_id

    async def interrupted() -> bool:
        messages = await stored(db_url, chat_id)
        return len(messages) == 3 and messages[2].status is MessageStatus.INTERRUPTED

    assert await eventually(interrupted)
    partial = (await stored(db_url, chat_id))[2]
    assert partial.role is Role.ASSISTANT and partial.finish_reason == "cancelled"
    assert partial.content.startswith(received[-1].content) and len(partial.content.split()) < 400


async def test_auth_takes_the_token_plain_or_bearer_in_metadata(
    make_server: MakeServer, original_proto: Proto, fake_llm: FakeLLM
) -> None:
    served = await make_server(AUTH_TOKEN="s3cret")
    request = original_proto[0].ChatRequest(user_id="u1", user_message="hi")
    for metadata in ((), (("authorization", "wrong"),), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            [r async for r in served.legacy.ChatStream(request, metadata=metadata)]
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "authorization" in (info.value.details() or "")
    assert fake_llm.records == []
    for token in ("s3cret", "Bearer s3cret"):
        responses = [r async for r in served.legacy.ChatStream(request, metadata=(("authorization", token),))]
        assert responses[-1].content == "Echo: hi"
