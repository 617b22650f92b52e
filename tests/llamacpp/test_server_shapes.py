"""The real llama.cpp server, through the real openai SDK: the shapes the service must survive.

These pin what the fake LLM server's llama.cpp behaviours replay: counts well above o200k's, no usage
on a stream, an empty 200 stream for a prompt over `n_ctx`, a 400 context_length_exceeded when not
streaming, and answers silently cut short when the prompt leaves less than max_tokens.
"""

from __future__ import annotations

import random
from typing import Any

import openai
import pytest

from gateways.llm.tokenizer import Tokenizer
from tests.llamacpp.server import CONTEXT, LlamaServer, Recorder
from tests.llamacpp.text import EMOJI, PORTUGUESE, long_message

pytestmark = pytest.mark.llamacpp
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-llama", base_url=url, max_retries=0)


@pytest.mark.parametrize(("language", "at_least"), [("pt", 1.5), ("zh", 1.3), ("emoji", 1.5), ("en", 1.05)])
def test_the_model_counts_well_above_o200k(llama_server: LlamaServer, language: str, at_least: float) -> None:
    rng, o200k = random.Random(5), Tokenizer("o200k-approximation")
    texts = [
        " ".join(rng.choices(EMOJI, k=40)) if language == "emoji" else long_message(rng, language, 6)
        for _ in range(5)
    ]
    ours = sum(o200k.count_text(t) for t in texts)
    theirs = sum(llama_server.post("/extras/tokenize/count", {"input": t})[1]["count"] - 1 for t in texts)
    assert theirs >= at_least * ours


def test_a_prompt_that_fits_is_answered_in_full_and_streams_carry_no_usage(llama_server: LlamaServer) -> None:
    messages: list[Any] = [SYSTEM, {"role": "user", "content": long_message(random.Random(1), "pt", 4)}]
    api = client(llama_server.url + "/v1")
    whole = api.chat.completions.create(model=llama_server.model_id, messages=messages, max_tokens=64)
    assert whole.choices[0].message.content and whole.choices[0].finish_reason == "length"
    assert whole.usage is not None and whole.usage.completion_tokens == 64
    assert whole.usage.prompt_tokens == llama_server.prompt_tokens(messages)

    chunks = list(
        api.chat.completions.create(
            model=llama_server.model_id,
            messages=messages,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert all(c.usage is None for c in chunks)  # llama-cpp-python ignores stream_options


def test_a_prompt_over_n_ctx_is_an_empty_stream_or_a_400(llama_server: LlamaServer) -> None:
    messages: list[Any] = [SYSTEM, {"role": "user", "content": long_message(random.Random(2), "pt", 40)}]
    size = llama_server.prompt_tokens(messages)
    assert size > CONTEXT
    with Recorder(llama_server.url) as recorder:
        api = client(recorder.base_url)
        stream = api.chat.completions.create(
            model=llama_server.model_id,
            messages=messages,
            max_tokens=64,
            stream=True,
        )
        assert list(stream) == []
        assert recorder.exchanges[-1].status == 200 and recorder.exchanges[-1].events == []

        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model=llama_server.model_id, messages=messages, max_tokens=64)
    error = recorder.exchanges[-1].error["error"]
    assert error["code"] == "context_length_exceeded" and error["type"] == "invalid_request_error"
    assert f"maximum context length is {CONTEXT} tokens" in error["message"]
    assert f"({size} in the messages, 64 in the completion)" in error["message"]
    assert refused.value.status_code == 400


def test_a_prompt_that_leaves_less_than_max_tokens_gets_a_shorter_answer(llama_server: LlamaServer) -> None:
    rng = random.Random(3)
    messages: list[Any] = [SYSTEM, {"role": "user", "content": long_message(rng, "pt", 20)}]
    while llama_server.prompt_tokens(messages) < CONTEXT - 40:
        messages[1]["content"] += " " + rng.choice(PORTUGUESE)  # a few tokens at a time
    room = CONTEXT - llama_server.prompt_tokens(messages)
    api = client(llama_server.url + "/v1")
    short = api.chat.completions.create(model=llama_server.model_id, messages=messages, max_tokens=64)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == room < 64
