"""The /v1 JSON API and its SSE answers through aiohttp's test client: real app, Ray, MariaDB, LLM."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from store import DatabaseURL, open_store
from store.records import MessageRecord, MessageStatus, Role
from tests.http_support import MakeClient, app_clients, parse_events, read_events
from tests.llm_server import FakeLLM, words_reply

SSE = {"Accept": "text/event-stream"}
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def chats(user: str) -> str:
    return f"/v1/users/{quote(user, safe='')}/chats"


async def new_chat(client: Client, user: str, **body: Any) -> dict[str, Any]:
    r = await client.post(chats(user), json=body)
    assert r.status == 201, await r.text()
    return await r.json()  # type: ignore[no-any-return]


async def stored(db: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(db)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


async def test_create_get_list_end_and_delete_a_chat(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    created = await new_chat(
        client, user, model="gpt-4", system_prompt="Be terse.", temperature=0.1, max_tokens=200, stop=["END"]
    )
    assert created["user_id"] == user and created["status"] == "active" and created["title"] == ""
    assert created["params"] == {
        "model": "gpt-4",
        "context_tokens": 8192,
        "max_tokens": 200,
        "temperature": 0.1,
        "top_p": None,
        "stop": ["END"],
        "presence_penalty": None,
        "frequency_penalty": None,
    }
    assert created["window"]["messages"] == 1 and created["window"]["context_tokens"] == 8192
    url = f"{chats(user)}/{created['chat_id']}"
    got = await (await client.get(url)).json()
    assert got == created
    listed = await (await client.get(chats(user))).json()
    assert [c["chat_id"] for c in listed["chats"]] == [created["chat_id"]] and listed["next_page_token"] == ""
    ended = await client.post(f"{url}/end")
    assert ended.status == 200 and (await ended.json())["status"] == "ended"
    r = await client.post(f"{url}/messages", json={"content": "still there?"})
    assert r.status == 409 and (await r.json())["error"]["code"] == "failed_precondition"
    assert (await client.delete(url)).status == 204
    r = await client.get(url)
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_a_chosen_chat_id_is_used_once(make_client: MakeClient, user: str, chat_id: str) -> None:
    client = await make_client()
    assert (await new_chat(client, user, chat_id=chat_id))["chat_id"] == chat_id
    r = await client.post(chats(user), json={"chat_id": chat_id})
    assert r.status == 409 and (await r.json())["error"]["code"] == "already_exists"


async def test_sending_a_message_answers_with_json(
    make_client: MakeClient, user: str, db_url: DatabaseURL
) -> None:
    client = await make_client()
    chat = await new_chat(client, user)
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "Qual é a capital?"})
    assert r.status == 200 and r.content_type == "application/json"
    answer = await r.json()
    assert answer == {
        "chat_id": chat["chat_id"],
        "user_message_id": 2,
        "assistant_message_id": 3,
        "content": "Echo: Qual é a capital?",
        "finish_reason": "stop",
        # The fake server counts the prompt as OpenAI does, and reports it.
        "usage": {"prompt_tokens": 22, "completion_tokens": 5, "total_tokens": 27, "source": "server"},
        "evicted": 0,
        "window": answer["window"],
    }
    assert answer["window"]["messages"] == 3 and answer["window"]["server_prompt_tokens"] == 22
    r = await client.get(f"{chats(user)}/{chat['chat_id']}/messages")
    page = await r.json()
    assert [(m["message_id"], m["role"], m["content"]) for m in page["messages"]] == [
        (1, "system", "You are a helpful assistant."),
        (2, "user", "Qual é a capital?"),
        (3, "assistant", "Echo: Qual é a capital?"),
    ]
    assert [m.content for m in await stored(db_url, chat["chat_id"])][1:] == [
        "Qual é a capital?",
        "Echo: Qual é a capital?",
    ]


async def test_sse_streams_start_deltas_and_end_with_usage(make_client: MakeClient, user: str) -> None:
    client = await make_client(STREAM_FLUSH_MS="0")  # every delta its own event
    chat = await new_chat(client, user)
    r = await client.post(
        f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "um dois três quatro"}, headers=SSE
    )
    assert r.status == 200 and r.content_type == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache"
    events = parse_events(await r.read())
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "end" and set(names[1:-1]) == {"delta"}
    assert len(names) == 2 + 5  # the fake LLM sends one delta per word, each its own event here
    assert events[0][1] == {
        "chat_id": chat["chat_id"],
        "user_message_id": 2,
        "evicted": 0,
        "window": {
            "messages": 2,
            "tokens": events[0][1]["window"]["tokens"],
            "context_tokens": 128000,
            "server_prompt_tokens": None,
            "correction": 1.0,
        },
    }
    assert "".join(data["text"] for name, data in events if name == "delta") == "Echo: um dois três quatro"
    end = events[-1][1]
    assert end["assistant_message_id"] == 3 and end["finish_reason"] == "stop"
    prompt = events[0][1]["window"]["tokens"]  # the fake server counts as OpenAI does: the window's count
    assert end["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 5,
        "total_tokens": prompt + 5,
        "source": "server",
    }
    assert end["window"]["messages"] == 3 and end["window"]["server_prompt_tokens"] == prompt


async def test_a_client_that_goes_away_stops_the_llm_and_the_partial_is_kept(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    client = await make_client()
    chat = await new_chat(client, user)
    fake_llm.behaviour.reply = words_reply(400)
    fake_llm.behaviour.token_delay = 0.05
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "long"}, headers=SSE)
    events, _ = await read_events(r, 4)
    assert [name for name, _ in events[:4]] == ["start", "delta", "delta", "delta"]
    seen = "".join(data["text"] for name, data in events if name == "delta")
    r.close()  # the client goes away mid-answer

    assert await asyncio.to_thread(fake_llm.wait_for, lambda: fake_llm.records[-1].disconnected, 30)
    assert not fake_llm.records[-1].finished and fake_llm.records[-1].chunks_sent < 400

    async def partial() -> MessageRecord | None:
        for _ in range(300):
            messages = await stored(db_url, chat["chat_id"])
            if messages[-1].role is Role.ASSISTANT:
                return messages[-1]
            await asyncio.sleep(0.1)
        return None

    kept = await partial()
    assert kept is not None and kept.status is MessageStatus.INTERRUPTED and kept.finish_reason == "cancelled"
    assert kept.content.startswith(seen.rstrip()) and len(kept.content.split()) < 400
    # The chat is free again: the next turn runs.
    fake_llm.behaviour.reply = words_reply(3)
    fake_llm.behaviour.token_delay = 0
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "again"})
    assert r.status == 200 and (await r.json())["content"] == "w0 w1 w2"


async def test_an_llm_failure_after_the_start_is_an_error_event(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    chat = await new_chat(client, user)
    fake_llm.behaviour.reply = words_reply(20)
    fake_llm.behaviour.failures.append("cut:3")  # a cut stream is not retried
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "x"}, headers=SSE)
    assert r.status == 200
    events = parse_events(await r.read())
    assert events[0][0] == "start" and events[-1][0] == "error"
    assert events[-1][1]["status"] == 503 and events[-1][1]["error"]["code"] == "stream_broken"


async def test_errors_found_before_the_answer_are_json_even_when_sse_is_asked(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    r = await client.post(
        f"{chats(user)}/nope-{uuid.uuid4().hex}/messages", json={"content": "hi"}, headers=SSE
    )
    assert r.status == 404 and r.content_type == "application/json"
    assert (await r.json())["error"]["code"] == "not_found"
    fake_llm.behaviour.failures.extend([429, 429, 429])
    chat = await new_chat(client, user)
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "hi"}, headers=SSE)
    assert r.status == 200
    assert parse_events(await r.read())[-1][1] == {
        "error": {
            "code": "resource_exhausted",
            "message": "the LLM is rate-limiting this service; retry in a moment",
        },
        "status": 429,
    }
    fake_llm.behaviour.failures.extend([429, 429, 429])
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "hi"})
    assert r.status == 429 and (await r.json())["error"]["code"] == "resource_exhausted"
    fake_llm.behaviour.failures.extend([500, 500, 500])
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "hi"})
    assert r.status == 503 and (await r.json())["error"]["code"] == "unavailable"


async def test_a_user_can_neither_see_nor_use_another_users_chat(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    chat = await new_chat(client, user)
    mallory = f"mallory-{uuid.uuid4().hex[:6]}"
    url = f"{chats(mallory)}/{chat['chat_id']}"
    for method, path, body in (
        ("GET", url, None),
        ("GET", f"{url}/messages", None),
        ("POST", f"{url}/messages", {"content": "show me"}),
        ("POST", f"{url}/end", None),
        ("DELETE", url, None),
    ):
        r = await client.request(method, path, json=body)
        assert r.status == 403, (method, path)
        assert (await r.json())["error"]["code"] == "permission_denied"
    assert (await (await client.get(chats(mallory))).json())["chats"] == []
    assert (await client.get(f"{chats(user)}/{chat['chat_id']}")).status == 200


async def test_any_printable_user_id_travels_percent_encoded(make_client: MakeClient) -> None:
    client = await make_client()
    user = f"Ana Maria/ção+{uuid.uuid4().hex[:6]}"
    chat = await new_chat(client, user)
    assert chat["user_id"] == user
    listed = await (await client.get(chats(user))).json()
    assert [c["chat_id"] for c in listed["chats"]] == [chat["chat_id"]]


async def test_a_users_chats_page_newest_first(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    made = [(await new_chat(client, user))["chat_id"] for _ in range(5)]
    seen: list[str] = []
    token = ""
    for _ in range(5):
        r = await client.get(chats(user), params={"page_size": "2", "page_token": token})
        page = await r.json()
        seen += [c["chat_id"] for c in page["chats"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == made[::-1]
    for params in ({"page_token": "garbage!"}, {"page_size": "-1"}, {"page_size": "two"}):
        r = await client.get(chats(user), params=params)
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_argument", params


async def test_messages_evicted_from_the_window_are_listed_only_on_request(
    make_client: MakeClient, user: str
) -> None:
    client = await make_client(MODEL_MAX_TOKENS="400", MAX_TOKENS="100")
    chat = await new_chat(client, user)
    url = f"{chats(user)}/{chat['chat_id']}/messages"
    evicted = 0
    for i in range(6):
        r = await client.post(url, json={"content": f"message {i}: " + "palavra " * 40})
        evicted += (await r.json())["evicted"]
    assert evicted > 0
    window = (await (await client.get(url)).json())["messages"]
    everything = []
    token = ""
    while True:
        page = await (
            await client.get(url, params={"include_erased": "true", "page_size": "5", "page_token": token})
        ).json()
        everything += page["messages"]
        token = page["next_page_token"]
        if not token:
            break
    assert [m["message_id"] for m in everything] == list(range(1, 14))
    assert [m for m in everything if not m["erased"]] == window
    assert sum(m["erased"] for m in everything) == evicted
    assert window[0]["role"] == "system"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("chats", b"{not json", 400, "invalid_argument"),
        ("chats", b'{"temperature": "hot"}', 400, "invalid_argument"),
        ("chats", b'{"temperature": 5}', 400, "invalid_argument"),
        ("chats", b'{"temperature": 1' + b"0" * 400 + b"}", 400, "invalid_argument"),  # fuzz: was a 500
        ("chats", b'{"top_p": NaN, "presence_penalty": -Infinity}', 400, "invalid_argument"),
        ("chats", b'{"model": "no-such-model"}', 400, "invalid_argument"),
        ("chats", b'{"colour": "blue"}', 400, "invalid_argument"),
        ("chats", b'{"chat_id": "bad id!"}', 400, "invalid_argument"),
        ("chats", b'{"stop": "END"}', 400, "invalid_argument"),
        ("chats", b'{"system_prompt": "' + b"x" * 5000 + b'"}', 413, "message_too_large"),
        ("messages", b"[1]", 400, "invalid_argument"),
        ("messages", b'{"content": 42}', 400, "invalid_argument"),
        ("messages", b'{"content": "   "}', 400, "invalid_argument"),
        ("messages", b'{"content": "hi", "role": "system"}', 400, "invalid_argument"),
        ("messages", b'{"content": "' + b"y" * 1500 + b'"}', 413, "message_too_large"),
        ("messages", b'{"content": "' + b"y" * 5000 + b'"}', 413, "message_too_large"),
    ],
)
async def test_bad_requests_get_a_json_error_and_reach_no_llm(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, path: str, body: bytes, status: int, code: str
) -> None:
    client = await make_client(MAX_MESSAGE_CHARS="1000", MAX_BODY_BYTES="4096")
    url = chats(user)
    if path == "messages":
        url = f"{url}/{(await new_chat(client, user))['chat_id']}/messages"
    r = await client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert r.status == status
    assert set((await r.json())["error"]) == {"code", "message"}
    assert (await r.json())["error"]["code"] == code
    assert fake_llm.records == []


async def test_a_bad_chat_id_or_flag_in_the_url_is_400(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    r = await client.get(f"{chats(user)}/-bad-")
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_argument"
    chat = await new_chat(client, user)
    r = await client.get(f"{chats(user)}/{chat['chat_id']}/messages", params={"include_erased": "maybe"})
    assert r.status == 400


async def test_every_v1_route_needs_the_token_but_the_document(make_client: MakeClient, user: str) -> None:
    client = await make_client(AUTH_TOKEN="s3cret")
    for method, path in (
        ("POST", chats(user)),
        ("GET", chats(user)),
        ("GET", f"{chats(user)}/c1"),
        ("DELETE", f"{chats(user)}/c1"),
        ("POST", f"{chats(user)}/c1/end"),
        ("GET", f"{chats(user)}/c1/messages"),
        ("POST", f"{chats(user)}/c1/messages"),
    ):
        r = await client.request(method, path)
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthenticated", (method, path)
    assert (await client.get("/v1/openapi.json")).status == 200
    r = await client.post(chats(user), headers={"Authorization": "Bearer s3cret"})
    assert r.status == 201


async def test_the_store_down_is_503(make_client: MakeClient, user: str) -> None:
    from tests.conftest import free_port

    client = await make_client(DATABASE_URL=f"mysql://u:p@127.0.0.1:{free_port()}/nowhere")
    r = await client.get(chats(user))
    assert r.status == 503 and (await r.json())["error"]["code"] == "unavailable"
    r = await client.post(chats(user))
    assert r.status == 503


async def test_an_unknown_route_or_method_is_a_json_error(make_client: MakeClient, user: str) -> None:
    client = await make_client()
    r = await client.get("/v1/nothing-here")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await client.put(chats(user))
    assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


async def test_sse_deltas_are_coalesced_after_the_first_which_never_waits(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour.reply = words_reply(40)
    client = await make_client(STREAM_FLUSH_MS="1000", STREAM_FLUSH_TOKENS="100")
    chat = await new_chat(client, user)
    r = await client.post(f"{chats(user)}/{chat['chat_id']}/messages", json={"content": "fale"}, headers=SSE)
    events = parse_events(await r.read())
    deltas = [data["text"] for name, data in events if name == "delta"]
    # The first word at once; the 39 after it, sent by the LLM within a second, in one write.
    assert len(deltas) == 2 and deltas[0].strip() == "w0"
    assert "".join(deltas) == " ".join(f"w{i}" for i in range(40))
