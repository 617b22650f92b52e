"""Turns against each OpenAI-compatible server's behaviour, through the HTTP app (real Ray, MariaDB).

The test LLM server plays vLLM, llama.cpp's llama-server, llama-cpp-python, Ollama or OpenAI
(tests/llm_backends.py): each test shows what the user gets and what is stored when the server
cuts an answer, sends nothing, refuses the window as too large, counts differently or truncates.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateways.serve import build_runtime
from gateways.service.events import TurnFinished, TurnStarted
from gateways.settings import Settings
from store import DatabaseURL, open_store
from store.records import MessageRecord, MessageStatus, Role
from tests.http_support import Event, MakeClient, app_clients, base_env, parse_events, read_events
from tests.llm_server import Behaviour, FakeLLM, words_reply

SSE = {"Accept": "text/event-stream"}
Client = TestClient  # type: ignore[type-arg]
PT = "A cidade de São Paulo é a maior do Brasil, com milhões de habitantes e muitos bairros históricos. "
CN = "北京是中国的首都，有很多历史悠久的建筑和美丽的公园。"


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def toy(context: int, reserve: int = 64, tokenizer: str = "tiktoken") -> dict[str, str]:
    """A model the service does not know, with the window it is told, counted as `tokenizer` says."""
    return {
        "MODEL": "toy",
        "MODEL_MAX_TOKENS": str(context),
        "MAX_TOKENS": str(reserve),
        "TOKENIZER": tokenizer,
    }


async def new_chat(client: Client, user: str) -> str:
    r = await client.post(f"/v1/users/{user}/chats", json={})
    assert r.status == 201, await r.text()
    return str((await r.json())["chat_id"])


async def sse(client: Client, user: str, chat_id: str, content: str) -> list[Event]:
    r = await client.post(
        f"/v1/users/{user}/chats/{chat_id}/messages", json={"content": content}, headers=SSE
    )
    assert r.status == 200, await r.text()
    return parse_events(await r.read())


async def as_json(client: Client, user: str, chat_id: str, content: str) -> tuple[int, dict[str, Any]]:
    r = await client.post(f"/v1/users/{user}/chats/{chat_id}/messages", json={"content": content})
    return r.status, await r.json()


async def stored(db: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(db)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


def no_empty_complete_answer(messages: list[MessageRecord]) -> bool:
    return not any(
        m.role is Role.ASSISTANT and m.status is MessageStatus.COMPLETE and not m.content.strip()
        for m in messages
    )


def error_of(events: list[Event]) -> tuple[int, str]:
    name, data = events[-1]
    assert name == "error", events
    return data["status"], data["error"]["code"]


# -- broken streams -------------------------------------------------------------------------------


async def test_a_stream_ended_by_another_request_is_an_error_and_the_part_is_kept(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    # llama-cpp-python (interrupt_requests): a request that arrives ends the running answer with
    # `data: [DONE]` and no finish reason.
    fake_llm.behaviour = Behaviour(
        backend="llamacpp-python", interrupts=True, reply=words_reply(60), token_delay=0.05
    )
    client = await make_client(**toy(4000))
    first, second = await new_chat(client, user), await new_chat(client, user)
    r = await client.post(f"/v1/users/{user}/chats/{first}/messages", json={"content": "conte"}, headers=SSE)
    head, rest = await read_events(r, 3)  # start and two deltas
    assert [name for name, _ in head] == ["start", "delta", "delta"]
    assert (await as_json(client, user, second, "oi"))[0] == 200  # the request that cuts the first
    events = head + parse_events(rest + await r.read())
    assert error_of(events) == (503, "stream_broken") and not any(n == "end" for n, _ in events)
    partial = "".join(d["text"] for n, d in events if n == "delta")
    last = (await stored(db_url, first))[-1]
    assert (last.role, last.status, last.content) == (Role.ASSISTANT, MessageStatus.INTERRUPTED, partial)
    assert fake_llm.records[0].interrupted
    fake_llm.behaviour.token_delay = 0
    assert sse_ends(await sse(client, user, first, "e agora?"))


def sse_ends(events: list[Event]) -> bool:
    return events[0][0] == "start" and events[-1][0] == "end"


async def test_a_stream_without_a_finish_is_503_as_json_and_on_the_original_route(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    fake_llm.behaviour = Behaviour(reply=words_reply(10), failures=collections.deque(["done:3", "done:3"]))
    client = await make_client()
    chat = await new_chat(client, user)
    status, body = await as_json(client, user, chat, "oi")
    assert (status, body["error"]["code"]) == (503, "stream_broken")
    last = (await stored(db_url, chat))[-1]
    assert (last.status, last.content) == (MessageStatus.INTERRUPTED, "w0 w1 w2 ")
    r = await client.post("/chat", json={"user_id": user, "user_message": "oi"})
    assert r.status == 503 and (await r.json())["error"]["code"] == "stream_broken"
    r = await client.post("/chat", json={"user_id": user, "user_message": "de novo"})
    assert r.status == 200 and (await r.json())["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"


async def test_an_empty_200_with_nothing_to_evict_is_an_error_and_no_answer_is_stored(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    # llama-cpp-python answers a streamed prompt of n_ctx tokens or more with 200 and no event.
    fake_llm.behaviour = Behaviour(backend="llamacpp-python", n_ctx=150)
    client = await make_client(**toy(4000))
    chat = await new_chat(client, user)
    events = await sse(client, user, chat, PT * 5)  # about 200 of the server's tokens
    assert events[0][0] == "start" and error_of(events) == (503, "stream_broken")
    assert len(fake_llm.records) == 1  # nothing older to evict: no second try
    status, body = await as_json(client, user, await new_chat(client, user), PT * 5)
    assert (status, body["error"]["code"]) == (503, "stream_broken")
    r = await client.post("/chat", json={"user_id": user, "user_message": PT * 5})
    assert r.status == 503
    messages = await stored(db_url, chat)
    assert [m.role for m in messages] == [Role.SYSTEM, Role.USER]
    # The chat goes on: the long message is evicted on the next turn's empty answer, and it is sent again.
    events = await sse(client, user, chat, "Olá")
    assert sse_ends(events) and events[-1][1]["evicted"] == 1
    assert [r.refused for r in fake_llm.records[-2:]] == [True, False]
    messages = await stored(db_url, chat)
    assert no_empty_complete_answer(messages) and messages[1].erased


# -- overflow recovery ------------------------------------------------------------------------------

SHAPES = [
    ("openai", {}),
    ("vllm", {}),
    ("vllm", {"vllm_wording": "new"}),
    ("llama-server", {}),
    ("llama-server", {"stream_error_as_event": True}),
    ("llamacpp-python", {}),
]


@pytest.mark.parametrize(("backend", "knobs"), SHAPES, ids=lambda v: str(v) if isinstance(v, str) else "")
async def test_a_window_the_server_refuses_is_shrunk_and_sent_once_more(
    make_client: MakeClient,
    user: str,
    fake_llm: FakeLLM,
    db_url: DatabaseURL,
    backend: str,
    knobs: dict[str, Any],
) -> None:
    # The service believes in 2000 tokens; the server holds 600 of its own.
    fake_llm.behaviour = Behaviour(backend=backend, n_ctx=600, reply=words_reply(5), **knobs)
    client = await make_client(**toy(2000))
    chat = await new_chat(client, user)
    for i in range(16):
        events = await sse(client, user, chat, f"{i}: {PT * 2}")
        assert sse_ends(events), events  # the user never sees the overflow
    refused = [i for i, r in enumerate(fake_llm.records) if r.refused]
    assert refused, "the window never outgrew the server"
    for i in refused:
        retry = fake_llm.records[i + 1]
        assert (
            not retry.refused and retry.finished and retry.prompt_tokens < fake_llm.records[i].prompt_tokens
        )
    if backend in ("openai", "vllm", "llama-server") and not knobs.get("stream_error_as_event"):
        # The server said its size: the chat's next windows are planned to fit it.
        assert len(refused) == 1
    else:
        # An empty answer says nothing, but the smaller prompt that worked bounds the server's size.
        assert len(refused) <= 3, refused
    messages = await stored(db_url, chat)
    assert no_empty_complete_answer(messages) and any(m.erased for m in messages)
    assert len([m for m in messages if m.role is Role.ASSISTANT]) == 16


async def test_an_overflow_that_survives_the_retry_is_413_naming_the_window_and_the_chat_goes_on(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    fake_llm.behaviour = Behaviour(backend="llama-server", n_ctx=300, reply=words_reply(3))
    client = await make_client(**toy(2000))
    chat = await new_chat(client, user)
    for text in ("um", "dois"):
        assert sse_ends(await sse(client, user, chat, text))
    before = len(fake_llm.records)
    events = await sse(client, user, chat, PT * 9)  # alone about 315 of the server's tokens
    status, code = error_of(events)
    message = events[-1][1]["error"]["message"]
    assert (status, code) == (413, "context_overflow")
    assert f"chat {chat}'s window" in message and "of 2000 tokens" in message and "300" in message
    assert [r.refused for r in fake_llm.records[before:]] == [True, True]  # once more, then the error
    messages = await stored(db_url, chat)
    assert no_empty_complete_answer(messages) and messages[-1].role is Role.USER
    assert sse_ends(await sse(client, user, chat, "e agora, algo curto"))
    # What the server said is remembered: the same message is now refused before it is sent.
    before = len(fake_llm.records)
    status, body = await as_json(client, user, await new_chat(client, user), PT * 9)
    assert (status, body["error"]["code"], len(fake_llm.records)) == (413, "message_too_large", before)
    fresh = await make_client(**toy(2000))  # a gateway that has not learnt it yet
    status, body = await as_json(fresh, user, await new_chat(fresh, user), PT * 9)
    assert (status, body["error"]["code"]) == (413, "context_overflow")


async def test_a_message_the_window_can_never_hold_is_413_without_asking_the_server(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="vllm", n_ctx=4000)
    client = await make_client(**toy(400))
    chat = await new_chat(client, user)
    status, body = await as_json(client, user, chat, PT * 20)
    assert (status, body["error"]["code"]) == (413, "message_too_large")
    assert fake_llm.records == []


# -- counting ---------------------------------------------------------------------------------------


async def test_the_correction_converges_to_the_servers_count_and_both_are_shown(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    # Counted with tiktoken; the server's own tokenizer counts about 1.3 to 1.7 times more.
    fake_llm.behaviour = Behaviour(backend="vllm", n_ctx=1200, reply=words_reply(5))
    client = await make_client(**toy(1200, 100))
    chat = await new_chat(client, user)
    ratios = []
    for i in range(12):
        events = await sse(client, user, chat, f"{i}: {(PT if i % 2 else CN) * 3}")
        assert sse_ends(events), events
        ratios.append(fake_llm.records[-1].prompt_tokens / events[0][1]["window"]["tokens"])
    assert sum(r.refused for r in fake_llm.records) <= 1
    window = (await (await client.get(f"/v1/users/{user}/chats/{chat}")).json())["window"]
    assert window["correction"] == pytest.approx(sum(ratios[-4:]) / 4, rel=0.1)
    assert window["server_prompt_tokens"] == fake_llm.records[-1].prompt_tokens
    assert window["tokens"] < window["server_prompt_tokens"]  # both counts, each its own


@pytest.mark.parametrize("backend", ["vllm", "llama-server", "llamacpp-python"])
async def test_counting_with_the_servers_tokenizer_matches_its_prompt_size(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, backend: str
) -> None:
    fake_llm.behaviour = Behaviour(backend=backend, n_ctx=1500, reply=lambda m: "Sim. " + PT)
    client = await make_client(**toy(1500, 100, tokenizer="server"))
    chat = await new_chat(client, user)
    for i in range(8):
        events = await sse(client, user, chat, f"{i}: {(CN if i % 2 else PT) * 3}")
        assert sse_ends(events), events
        ours, theirs = events[0][1]["window"]["tokens"], fake_llm.records[-1].prompt_tokens
        assert abs(ours - theirs) <= 0.05 * theirs, (i, ours, theirs)
    assert not any(r.refused for r in fake_llm.records)
    # One count a message (the user's and the answer's each turn, the system prompt once),
    # beyond the probe's few requests.
    counts = [c for c in fake_llm.calls if "tokenize" in c]
    assert len(counts) <= 2 * 8 + 1 + 6


async def test_silent_front_truncation_is_a_warning_with_the_chat_id(
    make_client: MakeClient, user: str, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    # Ollama keeps the end of a prompt longer than num_ctx and says it counted only that.
    fake_llm.behaviour = Behaviour(backend="ollama", n_ctx=300, reply=words_reply(3))
    client = await make_client(**toy(4000))
    chat = await new_chat(client, user)
    caplog.set_level(logging.WARNING, logger="chatservice.turn")
    for i in range(6):
        assert sse_ends(await sse(client, user, chat, f"{i}: {PT * 3}"))  # answered all the same
    warnings = [r.getMessage() for r in caplog.records if "dropped part of the prompt" in r.getMessage()]
    assert warnings and all(f"chat {chat}:" in w for w in warnings)


async def test_usage_says_whether_the_server_counted_it(
    make_client: MakeClient, user: str, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="llamacpp-python", reply=words_reply(4))  # no usage when streaming
    client = await make_client(**toy(4000))
    chat = await new_chat(client, user)
    status, body = await as_json(client, user, chat, "Qual é a capital do Brasil?")
    assert status == 200 and body["usage"]["source"] == "estimate"
    assert body["usage"]["prompt_tokens"] == body["window"]["tokens"] - body["usage"]["completion_tokens"] - 4
    events = await sse(client, user, chat, "E da Argentina?")
    assert events[-1][1]["usage"]["source"] == "estimate"
    fake_llm.behaviour = Behaviour(backend="vllm", reply=words_reply(4))
    end = (await sse(client, user, chat, "E do Chile?"))[-1][1]
    assert end["usage"] == {
        "prompt_tokens": fake_llm.records[-1].prompt_tokens,
        "completion_tokens": 4,
        "total_tokens": fake_llm.records[-1].prompt_tokens + 4,
        "source": "server",
    }


async def test_a_turn_cancelled_while_its_answer_is_counted_still_stores_it_and_frees_the_chat(
    db_url: DatabaseURL, fake_llm: FakeLLM, user: str
) -> None:
    # With TOKENIZER=server the answer is counted on the LLM server after its last delta, and a
    # gateway cancels a turn whose client went away wherever it is. The turn must still end, or
    # the chat would wait TURN_TIMEOUT_SECONDS for its lease.
    fake_llm.behaviour = Behaviour(backend="llama-server", reply=words_reply(8), tokenize_delay=2.0)
    env = base_env(db_url, fake_llm) | toy(4000, tokenizer="server")
    runtime = build_runtime(Settings.from_env(env), in_process=True)
    try:
        started: list[TurnStarted] = []

        async def consume() -> None:
            async for event in runtime.service.turn(user, None, "oi"):
                if isinstance(event, TurnStarted):
                    started.append(event)

        task = asyncio.ensure_future(consume())

        def answer_being_counted() -> bool:
            calls = fake_llm.calls
            asked = [i for i, c in enumerate(calls) if c == "POST /v1/chat/completions"]
            return bool(asked) and any("tokenize" in c for c in calls[asked[-1] + 1 :])

        assert await eventually(answer_being_counted)
        task.cancel()  # while the server counts the answer (it takes 2 s to)
        with pytest.raises(asyncio.CancelledError):
            await task
        chat_id = started[0].chat_id

        async def next_turn() -> list[object]:
            return [e async for e in runtime.service.turn(user, chat_id, "ainda aí?")]

        events = await asyncio.wait_for(next_turn(), 60)  # not held until the turn's lease expires
        assert isinstance(events[-1], TurnFinished)
        answers = [(m.status, m.content) for m in await stored(db_url, chat_id) if m.role is Role.ASSISTANT]
        assert answers == [(MessageStatus.COMPLETE, "w0 w1 w2 w3 w4 w5 w6 w7")] * 2
    finally:
        await runtime.close()


async def eventually(check: Callable[[], bool], within: float = 30.0) -> bool:
    for _ in range(int(within / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()
