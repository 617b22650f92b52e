"""What the service reads of the process's Settings: a few fields, their defaults declared there only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateways.service.coalesce import Coalescing
from store.records import ChatParams

if TYPE_CHECKING:
    from gateways.settings import Settings


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The few settings the service reads (the gateways and wiring read the rest)."""

    default_params: ChatParams
    initial_chat_message: str
    max_message_chars: int
    turn_timeout_seconds: float
    user_turns_per_minute: int
    log_content: bool
    auto_title: bool  # titles asked of the LLM (never of the offline responder)
    # How an answer's deltas are joined into writes.
    coalescing: Coalescing = field(default_factory=Coalescing)

    @classmethod
    def of(cls, s: Settings) -> ServiceConfig:
        """What the service reads of the process's Settings (their defaults are declared there only)."""
        return cls(
            s.default_params,
            s.initial_chat_message,
            s.max_message_chars,
            s.turn_timeout_seconds,
            s.user_turns_per_minute,
            s.log_content,
            s.auto_title and not s.offline,
            Coalescing(s.stream_flush_ms / 1000, s.stream_flush_tokens),
        )
