"""Broken streams, overflows and usage sources over gRPC (both services) and WhatsApp."""

from __future__ import annotations

import collections
import random
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.whatsapp.rules import FAILED_REPLY, chat_id_for, id_key
from store import DatabaseURL
from store.records import MessageStatus, Role
from tests.grpc_support import MakeServer, make_server, original_proto, stored, turn_events
from tests.http_support import MakeClient, app_clients
from tests.llm_server import Behaviour, FakeLLM, words_reply

__all__ = ["make_server", "original_proto"]

TOY = {"MODEL": "toy", "MODEL_MAX_TOKENS": "4000", "MAX_TOKENS": "64", "TOKENIZER": "tiktoken"}
PT = "A cidade de São Paulo é a maior do Brasil, com milhões de habitantes e muitos bairros históricos. "


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def test_a_cut_stream_is_unavailable_with_the_part_kept(
    make_server: MakeServer, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    fake_llm.behaviour = Behaviour(reply=words_reply(10), failures=collections.deque(["done:2"]))
    served = await make_server()
    events: list[pb.TurnEvent] = []

    async def read() -> None:
        async for event in served.v1.SendMessage(pb.SendMessageRequest(user_id=user, content="oi")):
            events.append(event)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await read()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "finish reason" in (
        info.value.details() or ""
    )
    chat_id = events[0].started.chat_id
    assert "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta") == "w0 w1 "
    last = (await stored(db_url, chat_id))[-1]
    assert (last.role, last.status, last.content) == (Role.ASSISTANT, MessageStatus.INTERRUPTED, "w0 w1 ")
    again = await turn_events(served, user, "de novo", chat_id)
    assert again[-1].WhichOneof("event") == "finished"


async def test_an_empty_answer_on_the_original_service_is_unavailable(
    make_server: MakeServer, user: str, fake_llm: FakeLLM, original_proto: tuple[object, object]
) -> None:
    chat_pb2 = original_proto[0]
    fake_llm.behaviour.failures.append("empty")
    served = await make_server()
    request = chat_pb2.ChatRequest(user_id=user, user_message="oi")  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [r async for r in served.legacy.ChatStream(request)]
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_an_overflow_after_the_retry_is_invalid_argument_and_usage_says_estimate(
    make_server: MakeServer, user: str, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="llama-server", n_ctx=300, reply=words_reply(3), usage=False)
    served = await make_server(**TOY)
    first = await turn_events(served, user, "um")
    chat_id = first[0].started.chat_id
    assert first[-1].finished.usage.source == pb.USAGE_SOURCE_ESTIMATE
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await turn_events(served, user, PT * 9, chat_id)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"chat {chat_id}'s window" in (info.value.details() or "")
    assert [r.refused for r in fake_llm.records[-2:]] == [True, True]
    fake_llm.behaviour.usage = None  # llama-server sends usage when asked
    done = await turn_events(served, user, "algo curto", chat_id)
    finished = done[-1].finished
    assert finished.usage.source == pb.USAGE_SOURCE_SERVER
    assert finished.usage.prompt_tokens == fake_llm.records[-1].prompt_tokens
    chat = await served.v1.GetChat(pb.GetChatRequest(user_id=user, chat_id=chat_id))
    assert chat.window.server_prompt_tokens == fake_llm.records[-1].prompt_tokens
    assert chat.window.HasField("correction") and chat.window.correction > 1.0
    assert finished.window.server_prompt_tokens == finished.usage.prompt_tokens


# -- WhatsApp ---------------------------------------------------------------------------------------

AUTH = "twilio-auth-token-0123456789abcdef"
PUBLIC = "https://chat.example.com"


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


async def whatsapp(client: TestClient, sender: str, body: str) -> str:  # type: ignore[type-arg]
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "From": sender}
    form |= {"To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0"}
    signature = RequestValidator(AUTH).compute_signature(PUBLIC + "/twilio/whatsapp", form)
    r = await client.post("/twilio/whatsapp", data=form, headers={"X-Twilio-Signature": signature})
    assert r.status == 200
    return await r.text()


async def test_a_broken_stream_gets_the_whatsapp_apology_and_the_next_message_an_answer(
    make_client: MakeClient, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    client = await make_client(TWILIO_AUTH_TOKEN=AUTH, PUBLIC_URL=PUBLIC)
    sender = f"whatsapp:+5511{random.randrange(10**8, 10**9)}"
    fake_llm.behaviour = Behaviour(reply=words_reply(6), failures=collections.deque(["empty", "done:2"]))
    assert FAILED_REPLY in await whatsapp(client, sender, "oi")
    assert FAILED_REPLY in await whatsapp(client, sender, "oi de novo")
    assert "w0 w1 w2 w3 w4 w5" in await whatsapp(client, sender, "e agora?")
    messages = await stored(db_url, chat_id_for(sender, 1, id_key(None, AUTH)))
    answers = [(m.status, m.content) for m in messages if m.role is Role.ASSISTANT]
    assert answers == [(MessageStatus.INTERRUPTED, "w0 w1 "), (MessageStatus.COMPLETE, "w0 w1 w2 w3 w4 w5")]
