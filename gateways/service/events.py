"""What a turn yields to the gateways: its start, the answer's deltas, and its end."""

from __future__ import annotations

from dataclasses import dataclass

from actors.protocol import WindowInfo


@dataclass(frozen=True, slots=True)
class TurnStarted:
    chat_id: str
    user_message_id: int
    created: bool
    evicted: int
    window: WindowInfo


@dataclass(frozen=True, slots=True)
class TurnDelta:
    text: str


@dataclass(frozen=True, slots=True)
class TurnFinished:
    assistant_message_id: int | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    evicted: int
    window: WindowInfo
    usage_source: str = "estimate"  # "server": both counts are the LLM server's own


TurnEvent = TurnStarted | TurnDelta | TurnFinished
