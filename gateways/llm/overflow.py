"""Context-overflow answers of OpenAI-compatible servers, recognised by shape. Pure: no I/O.

What each server says when a prompt does not fit (the fake server in tests replays these):

- OpenAI: 400 `{"error": {"code": "context_length_exceeded", "type": "invalid_request_error",
  "message": "This model's maximum context length is N tokens. However, your messages resulted
  in M tokens..."}}`.
- llama-cpp-python: 400, the same code, "...maximum context length is N tokens. However, you
  requested T tokens (M in the messages, K in the completion)..." (its server/errors.py).
- llama.cpp llama-server: 400 `{"error": {"code": 400, "type": "exceed_context_size_error",
  "message": "request (M tokens) exceeds the available context size (N tokens), try increasing
  it", "n_prompt_tokens": M, "n_ctx": N}}`, also for a streamed request; and "Context size has
  been exceeded." (type server_error) when a slot runs out mid-answer.
- vLLM: 400 `{"object": "error", "type": "BadRequestError", "code": 400, "message": "This model's
  maximum context length is N tokens. However, you requested T tokens (M in the messages, K in
  the completion)..."}`; newer versions: "...your request has M input tokens..." or "...your
  prompt contains M input tokens...".

Matched loosely: the numbers are read where present; a message only recognised as an overflow
carries none, and the service then evicts by a margin instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_OVERFLOW = re.compile(
    r"maximum context length|context[_ ]length[_ ]exceeded|exceeds? the available context"
    r"|context size has been exceeded|larger than the max context|exceed context window",
    re.IGNORECASE,
)
_CONTEXT = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"available context size \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"max context size \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"context window of (\d+)", re.IGNORECASE),
)
_PROMPT = (
    re.compile(r"\((\d+) in the messages", re.IGNORECASE),
    re.compile(r"messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"(\d+) input tokens", re.IGNORECASE),
    re.compile(r"request \((\d+) tokens?\) exceeds", re.IGNORECASE),
    re.compile(r"requested tokens \((\d+)\) exceed", re.IGNORECASE),
)
_TYPES = frozenset({"exceed_context_size_error"})
_CODES = frozenset({"context_length_exceeded"})


@dataclass(frozen=True, slots=True)
class Overflow:
    """A server's refusal of a prompt as too large, and what it counted, when it said."""

    prompt_tokens: int | None = None  # the server's count of the prompt
    context_tokens: int | None = None  # the server's context size


def overflow_of(body: object, message: str = "") -> Overflow | None:
    """The overflow an error body (the SDK's `exc.body`) and message describe, or None."""
    fields = body if isinstance(body, Mapping) else {}
    text = " ".join(s for s in (_text(fields.get("message")), message) if s)
    if not (
        _text(fields.get("type")) in _TYPES or _text(fields.get("code")) in _CODES or _OVERFLOW.search(text)
    ):
        return None
    prompt = _number(fields.get("n_prompt_tokens")) or _first(_PROMPT, text)
    context = _number(fields.get("n_ctx")) or _first(_CONTEXT, text)
    return Overflow(prompt, context)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None
