"""Every server's context-overflow answer is recognised, with the numbers it gives."""

from __future__ import annotations

import pytest

from gateways.llm.overflow import Overflow, overflow_of
from tests import llm_backends as backends


def inner(body: dict[str, object]) -> object:
    """What the openai SDK keeps as `exc.body`: the "error" object when there is one."""
    return body.get("error", body)


@pytest.mark.parametrize(
    ("backend", "wording"),
    [
        ("openai", "old"),
        ("vllm", "old"),
        ("vllm", "new"),
        ("llamacpp-python", "old"),
        ("llama-server", "old"),
    ],
)
def test_each_backends_refusal_gives_the_servers_count_and_context(backend: str, wording: str) -> None:
    refused = backends.refusal(backend, prompt=1122, max_tokens=64, n_ctx=1024, wording=wording)
    assert refused is not None and refused.status == 400
    assert overflow_of(inner(refused.body), "") == Overflow(1122, 1024)


def test_openais_own_wording_for_messages_alone() -> None:
    body = {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130512 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    assert overflow_of(body) == Overflow(130512, 128000)


def test_vllm_max_tokens_too_large_names_the_input_and_the_context() -> None:
    message = (
        "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context "
        "length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778). None"
    )
    assert overflow_of({"message": message, "type": "BadRequestError", "code": 400}) == Overflow(2778, 4096)


def test_llama_server_fields_win_over_its_message() -> None:
    body = backends.exceed_context_size(4390, 4096)
    assert overflow_of(body | {"message": "request exceeds the available context"}) == Overflow(4390, 4096)


def test_a_slot_that_fills_mid_answer_is_an_overflow_without_numbers() -> None:
    assert overflow_of(backends.CONTEXT_EXCEEDED_MID_ANSWER) == Overflow(None, None)


def test_the_sdks_message_alone_is_enough() -> None:
    message = "Error code: 400 - {'error': {'message': 'request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it'}}"
    assert overflow_of(None, message) == Overflow(5000, 4096)


@pytest.mark.parametrize(
    "body",
    [
        {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "code": "rate_limit_exceeded"},
        {
            "message": "The model `toy` does not exist",
            "type": "invalid_request_error",
            "code": "model_not_found",
        },
        {"message": "temperature must be between 0 and 2", "type": "BadRequestError", "code": 400},
        "a plain text body",
        None,
    ],
)
def test_other_errors_are_not_overflows(body: object) -> None:
    assert overflow_of(body, "") is None


def test_absurd_numbers_are_not_read() -> None:
    body = {"type": "exceed_context_size_error", "n_prompt_tokens": -3, "n_ctx": True, "message": ""}
    assert overflow_of(body) == Overflow(None, None)
