"""The openai SDK against a local OpenAI-compatible server: streaming, parameters, errors, cancel."""

from __future__ import annotations

import asyncio
import collections

import pytest

from actors.protocol import TurnPlan, WindowInfo
from gateways.llm.client import Delta, Finish, LLMEvent, OpenAIChat
from gateways.llm.offline import OfflineResponder, offline_answer
from gateways.llm.tokenizer import tokenizer_for
from store.errors import ContextOverflow, FailedPrecondition, ResourceExhausted, StreamBroken, Unavailable
from store.records import ChatParams
from tests.conftest import free_port
from tests.llm_server import Behaviour, FakeLLM, words_reply

PARAMS = ChatParams(
    "gpt-4o-mini",
    128_000,
    256,
    temperature=0.2,
    top_p=0.9,
    stop=("END",),
    presence_penalty=0.1,
    frequency_penalty=0.3,
)


def plan(content: str = "Qual é a capital do Brasil?") -> TurnPlan:
    messages = ({"role": "system", "content": "sys"}, {"role": "user", "content": content})
    return TurnPlan("t1", "c1", True, 2, messages, PARAMS, 0, WindowInfo(2, 30, 128_000))


async def collect(llm: OpenAIChat | OfflineResponder, p: TurnPlan) -> list[LLMEvent]:
    return [event async for event in llm.stream(p)]


@pytest.fixture
async def llm(fake_llm: FakeLLM) -> OpenAIChat:
    return OpenAIChat("test-key", fake_llm.base_url, timeout=5)


async def test_an_answer_streams_as_deltas_then_a_finish_with_usage(
    llm: OpenAIChat, fake_llm: FakeLLM
) -> None:
    events = await collect(llm, plan())
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "Echo: Qual é a capital do Brasil?"
    assert len([e for e in events if isinstance(e, Delta)]) > 1
    # The fake counts the prompt as OpenAI does (the window's own formula) and the answer in words.
    assert events[-1] == Finish("stop", tokenizer_for("gpt-4o-mini").count_messages(list(plan().messages)), 7)
    body = fake_llm.records[-1].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == list(plan().messages)
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["stop"]) == (
        "gpt-4o-mini",
        256,
        0.2,
        0.9,
        ["END"],
    )
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.1, 0.3)
    assert "n" not in body


async def test_rate_limits_surface_after_the_sdks_own_retries(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.failures.extend([429, 429, 429])
    with pytest.raises(ResourceExhausted, match="rate-limiting"):
        await collect(llm, plan())
    assert len(fake_llm.records) == 3


async def test_a_transient_server_error_is_retried_by_the_sdk(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.failures.append(500)
    events = await collect(llm, plan())
    assert isinstance(events[-1], Finish) and len(fake_llm.records) == 2


async def test_persistent_server_errors_are_unavailable(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.failures.extend([500, 503, 502])
    with pytest.raises(Unavailable):
        await collect(llm, plan())


async def test_an_unknown_model_is_a_failed_precondition(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.failures.append(404)
    with pytest.raises(FailedPrecondition):
        await collect(llm, plan())


async def test_a_stream_cut_mid_answer_is_unavailable_after_some_deltas(
    llm: OpenAIChat, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour.reply = words_reply(20)
    fake_llm.behaviour.failures.append("cut:3")
    seen: list[str] = []

    async def read() -> None:
        async for event in llm.stream(plan()):
            if isinstance(event, Delta):
                seen.append(event.text)

    with pytest.raises(Unavailable):
        await read()
    assert len(seen) == 3


async def test_closing_the_stream_early_disconnects_from_the_llm(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.reply = words_reply(200)
    fake_llm.behaviour.token_delay = 0.02
    stream = llm.stream(plan())
    async for event in stream:
        if isinstance(event, Delta):
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(fake_llm.wait_for, lambda: fake_llm.disconnects == 1)
    assert not fake_llm.records[-1].finished and fake_llm.records[-1].chunks_sent < 200


async def test_an_unreachable_server_is_unavailable() -> None:
    llm = OpenAIChat("k", f"http://127.0.0.1:{free_port()}/v1", timeout=2, max_retries=0)
    with pytest.raises(Unavailable, match="reach"):
        await collect(llm, plan())
    await llm.close()


async def test_the_offline_responder_says_so_and_describes_the_window() -> None:
    events = await collect(OfflineResponder(), plan())
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text == offline_answer(plan())
    assert "offline" in text and "2 messages, 30 of 128000 tokens" in text and "capital do Brasil" in text
    assert events[-1] == Finish("stop")


async def test_a_stream_that_ends_without_a_finish_is_broken_and_only_no_event_at_all_is_empty(
    llm: OpenAIChat, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour.reply = words_reply(5)
    fake_llm.behaviour.failures.extend(["done:2", "done:0", "empty"])
    seen: list[str] = []

    async def read() -> None:
        async for event in llm.stream(plan()):
            if isinstance(event, Delta):
                seen.append(event.text)

    for expected_text, empty in (("w0 w1 ", False), ("", False), ("", True)):
        seen.clear()
        with pytest.raises(StreamBroken) as info:
            await read()
        # Cut after some text, cut before any (llama-cpp-python ends a streaming answer when another
        # request arrives, after its first chunk), or not a single event (a prompt too large for it).
        assert ("".join(seen), info.value.empty) == (expected_text, empty)


async def test_a_finish_without_text_is_never_an_answer(llm: OpenAIChat, fake_llm: FakeLLM) -> None:
    fake_llm.behaviour.reply = lambda messages: ""
    with pytest.raises(StreamBroken, match="without answering anything"):
        await collect(llm, plan())
    fake_llm.behaviour = Behaviour(backend="llama-server", n_ctx=40, reply=words_reply(5))
    with pytest.raises(ContextOverflow):  # refused with its numbers
        await collect(llm, plan("x " * 60))


async def test_every_overflow_shape_is_a_context_overflow_with_what_the_server_said(
    llm: OpenAIChat, fake_llm: FakeLLM
) -> None:
    for backend, knobs in (("openai", {}), ("vllm", {"vllm_wording": "new"}), ("llama-server", {})):
        fake_llm.behaviour = Behaviour(backend=backend, n_ctx=30, **knobs)
        with pytest.raises(ContextOverflow) as info:
            await collect(llm, plan("Qual é a capital do Brasil? " * 5))
        refused = fake_llm.records[-1]
        assert (info.value.server_prompt_tokens, info.value.server_context_tokens) == (
            refused.prompt_tokens,
            30,
        )
    fake_llm.behaviour = Behaviour(reply=words_reply(5), failures=collections.deque(["overflow:0"]))
    with pytest.raises(ContextOverflow) as info:  # llama-server's "Context size has been exceeded."
        await collect(llm, plan())
    assert info.value.server_context_tokens is None
