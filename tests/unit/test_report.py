"""A turn's log lines: an LLM's refusal may quote the request, so it is logged only with LOG_CONTENT=1."""

from __future__ import annotations

import logging

import pytest

from gateways.service.report import TurnReport
from store.errors import InvalidArgument, Unavailable

# vLLM answers a request that fails validation with pydantic's error, which quotes the input.
REFUSAL = InvalidArgument(
    "the LLM rejected the request: 1 validation error for ChatCompletionRequest messages.1.content "
    "input_value='o segredo da Ana', input_type=str"
)


def test_an_llm_refusal_is_logged_without_its_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatservice.turn"):
        TurnReport(log_content=False).llm_failed(REFUSAL)
    [line] = caplog.messages
    assert "invalid_argument" in line and "segredo" not in line and "withheld" in line


def test_with_log_content_the_refusal_is_logged_whole(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatservice.turn"):
        TurnReport(log_content=True).llm_failed(REFUSAL)
    assert "o segredo da Ana" in caplog.messages[0]


def test_the_services_own_messages_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatservice.turn"):
        TurnReport(log_content=False).llm_failed(Unavailable("cannot reach the LLM; retry shortly"))
    assert "cannot reach the LLM; retry shortly" in caplog.messages[0]
