"""Every status code of the API produced by a real request to a real server; never UNKNOWN."""

from __future__ import annotations

import uuid

import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from store import DatabaseURL
from store.records import MessageStatus
from tests.conftest import free_port
from tests.grpc_support import MakeServer, eventually, make_server, original_proto, stored, turn_events
from tests.llm_server import FakeLLM, words_reply

__all__ = ["make_server", "original_proto"]

Code = grpc.StatusCode


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    try:
        if hasattr(call, "__aiter__"):
            [_ async for _ in call]
        else:
            await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    raise AssertionError("the call succeeded")


def send(served: object, user: str, content: str, chat_id: str = "", **kw: object) -> object:
    request = pb.SendMessageRequest(user_id=user, chat_id=chat_id, content=content)
    return served.v1.SendMessage(request, **kw)  # type: ignore[attr-defined]


async def test_invalid_argument_for_bad_input_with_advice(
    make_server: MakeServer, user: str, fake_llm: FakeLLM
) -> None:
    served = await make_server(MODEL_MAX_TOKENS="400", MAX_TOKENS="100", MAX_MESSAGE_CHARS="5000")
    cases = [
        (send(served, user, "   "), "empty"),
        (send(served, "", "hi"), "user_id"),
        (send(served, user, "hi", "bad id!"), "chat_id"),
        (send(served, user, "x " * 2000), "shorten it"),  # fits MAX_MESSAGE_CHARS, not the window
        (send(served, user, "x" * 6000), "at most 5000"),
        (
            served.v1.CreateChat(
                pb.CreateChatRequest(user_id=user, parameters=pb.ChatParameters(temperature=9))
            ),
            "temperature",
        ),
        (
            served.v1.CreateChat(
                pb.CreateChatRequest(user_id=user, parameters=pb.ChatParameters(max_tokens=400))
            ),
            "max_tokens",
        ),
        (
            served.v1.CreateChat(
                pb.CreateChatRequest(user_id=user, parameters=pb.ChatParameters(model="no-such-model"))
            ),
            "model",
        ),
        (served.v1.ListChats(pb.ListChatsRequest(user_id=user, page_token="garbage!")), "page_token"),
        (served.v1.ListChats(pb.ListChatsRequest(user_id=user, page_size=-1)), "page_size"),
    ]
    for call, hint in cases:
        code, details = await status_of(call)
        assert code is Code.INVALID_ARGUMENT, (hint, details)
        assert hint in details
    assert fake_llm.records == []


@pytest.mark.parametrize("auth", ["", "tok"])
async def test_invalid_argument_for_bytes_that_are_not_the_request_message(
    make_server: MakeServer, auth: str, fake_llm: FakeLLM
) -> None:
    """Found by the fuzz suite: gRPC answered UNKNOWN (and logged a traceback) for these."""
    served = await make_server(AUTH_TOKEN=auth)
    md = (("authorization", auth),) if auth else ()
    for path, raw in (
        ("/pb.ChatService/ChatStream", b"\x0a\x02\xff\xfe"),  # chat_id that is not UTF-8
        ("/chatservice.v1.ChatService/SendMessage", b"\x00"),  # field number 0
        ("/chatservice.v1.ChatService/CreateChat", b"\x1a\xff"),  # truncated parameters
        ("/chatservice.v1.ChatService/ListChats", b"\x08"),  # truncated varint
    ):
        kind = (
            served.channel.unary_stream
            if path.endswith("Stream") or "Send" in path
            else served.channel.unary_unary
        )
        code, details = await status_of(kind(path)(raw, metadata=md))
        assert code is Code.INVALID_ARGUMENT and "not a valid message" in details, (path, details)
    code, _ = await status_of(served.channel.unary_unary("/chatservice.v1.ChatService/GetChat")(b"\x00"))
    assert code is (Code.UNAUTHENTICATED if auth else Code.INVALID_ARGUMENT)
    assert fake_llm.records == []


async def test_not_found_and_permission_denied(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    missing = f"missing-{uuid.uuid4().hex}"
    assert (await status_of(send(served, user, "hello?", missing)))[0] is Code.NOT_FOUND
    assert (await status_of(served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=missing))))[
        0
    ] is Code.NOT_FOUND
    chat_id = (await turn_events(served, user, "mine"))[0].started.chat_id
    code, details = await status_of(send(served, "mallory", "show me", chat_id))
    assert code is Code.PERMISSION_DENIED and "another user" in details


async def test_failed_precondition_on_an_ended_chat(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    chat_id = (await turn_events(served, user, "hello"))[0].started.chat_id
    await served.v1.EndChat(pb.EndChatRequest(user_id=user, chat_id=chat_id))
    code, details = await status_of(send(served, user, "still there?", chat_id))
    assert code is Code.FAILED_PRECONDITION and "start a new chat" in details


async def test_resource_exhausted_when_the_llm_rate_limits_after_the_sdk_retries(
    make_server: MakeServer, user: str, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    fake_llm.behaviour.failures.extend([429, 429, 429])
    code, details = await status_of(send(served, user, "hi"))
    assert code is Code.RESOURCE_EXHAUSTED and "retry" in details
    assert len(fake_llm.records) == 3  # the first try and the SDK's two retries


async def test_unavailable_when_the_llm_fails(
    make_server: MakeServer, user: str, fake_llm: FakeLLM, original_proto: tuple[object, object]
) -> None:
    served = await make_server()
    fake_llm.behaviour.failures.extend([500, 500, 500])
    code, details = await status_of(send(served, user, "hi"))
    assert code is Code.UNAVAILABLE and "LLM" in details
    fake_llm.behaviour.failures.extend([500, 500, 500])
    request = original_proto[0].ChatRequest(user_id=user, user_message="hi")  # type: ignore[attr-defined]
    assert (await status_of(served.legacy.ChatStream(request)))[0] is Code.UNAVAILABLE


async def test_unavailable_when_the_store_is_unreachable(make_server: MakeServer, user: str) -> None:
    served = await make_server(DATABASE_URL=f"mysql://u:p@127.0.0.1:{free_port()}/nowhere")
    code, details = await status_of(send(served, user, "hi"))
    assert code is Code.UNAVAILABLE and "database" in details
    code, _ = await status_of(served.v1.ListChats(pb.ListChatsRequest(user_id=user)))
    assert code is Code.UNAVAILABLE


async def test_deadline_exceeded_stops_the_llm_and_keeps_the_partial_answer(
    make_server: MakeServer, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    served = await make_server()
    chat_id = (await served.v1.CreateChat(pb.CreateChatRequest(user_id=user))).chat_id
    await turn_events(
        served, user, "warm up", chat_id
    )  # the chat's actor is live: no start-up in the deadline
    fake_llm.behaviour.reply = words_reply(100)
    fake_llm.behaviour.token_delay = 0.5  # 50 s for the whole answer
    code, _ = await status_of(send(served, user, "a long one", chat_id, timeout=4))
    assert code is Code.DEADLINE_EXCEEDED
    record = fake_llm.records[-1]

    async def disconnected() -> bool:
        return record.disconnected

    assert await eventually(disconnected) and not record.finished

    async def interrupted() -> bool:
        messages = await stored(db_url, chat_id)
        return len(messages) == 5 and messages[4].status is MessageStatus.INTERRUPTED

    assert await eventually(interrupted)


async def test_cancelled_when_the_client_cancels(
    make_server: MakeServer, user: str, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    fake_llm.behaviour.reply = words_reply(200)
    fake_llm.behaviour.token_delay = 0.1
    call = send(served, user, "go on")
    async for event in call:  # type: ignore[attr-defined]
        if event.WhichOneof("event") == "delta":
            break
    call.cancel()  # type: ignore[attr-defined]
    assert await call.code() is Code.CANCELLED  # type: ignore[attr-defined]
    record = fake_llm.records[-1]

    async def disconnected() -> bool:
        return record.disconnected

    assert await eventually(disconnected)


async def test_unauthenticated_without_the_token(make_server: MakeServer, user: str) -> None:
    served = await make_server(AUTH_TOKEN="tok")
    code, details = await status_of(served.v1.ListChats(pb.ListChatsRequest(user_id=user)))
    assert code is Code.UNAUTHENTICATED and "authorization" in details
    md = (("authorization", "Bearer tok"),)
    assert (await served.v1.ListChats(pb.ListChatsRequest(user_id=user), metadata=md)).next_page_token == ""


async def test_a_caller_that_gives_up_while_queued_does_not_block_the_chat(
    make_server: MakeServer, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    served = await make_server()
    chat_id = (await served.v1.CreateChat(pb.CreateChatRequest(user_id=user))).chat_id
    fake_llm.behaviour.reply = words_reply(30)
    fake_llm.behaviour.token_delay = 0.1  # the first turn holds the chat for about 3 s
    first = send(served, user, "first", chat_id)
    assert (await first.read()).WhichOneof("event") == "started"  # type: ignore[attr-defined]
    # The second caller queues behind it and gives up before its turn comes.
    code, _ = await status_of(send(served, user, "second", chat_id, timeout=1))
    assert code is Code.DEADLINE_EXCEEDED
    while await first.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
        pass
    fake_llm.behaviour.reply = words_reply(3)
    fake_llm.behaviour.token_delay = 0.0
    events = [e async for e in send(served, user, "third", chat_id, timeout=60)]  # type: ignore[attr-defined]
    assert events[-1].WhichOneof("event") == "finished"
    contents = [(m.role.value, m.content) for m in await stored(db_url, chat_id)]
    assert ("user", "third") in contents and ("user", "first") in contents
