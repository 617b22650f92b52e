"""Token counting matches OpenAI's cookbook and needs no network."""

from __future__ import annotations

import pytest
import tiktoken.load
import tiktoken.registry

from gateways.llm import tokenizer
from gateways.llm.tokenizer import Tokenizer, encoding_name, tokenizer_for

# The example conversation of OpenAI's "How to count tokens with tiktoken" cookbook.
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_cookbook_example_counts_as_published(model: str, expected: int) -> None:
    assert tokenizer_for(model).count_messages(COOKBOOK) == expected


def test_models_map_to_tiktoken_encodings_and_unknown_models_fall_back() -> None:
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("gpt-4-0613") == "cl100k_base"
    assert encoding_name("llama-3.1-8b-instruct") == "o200k_base"


def test_a_message_adds_its_overhead_to_role_and_content() -> None:
    t = tokenizer_for("gpt-4o-mini")
    assert t.count_message("user", "hello") == 3 + t.count_text("user") + t.count_text("hello")


def test_special_token_text_typed_by_a_user_is_counted_not_refused() -> None:
    assert tokenizer_for("gpt-4o").count_text("<|endoftext|>") > 1


def test_encodings_load_from_the_vendored_files_without_any_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(path: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {path}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokenizer._encoding.cache_clear()
    for model in ("gpt-4o-mini", "gpt-4"):
        assert Tokenizer(model).count_text("Qual é a capital do Brasil?") > 0
    tokenizer._encoding.cache_clear()
