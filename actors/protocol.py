"""What gateways send a conversation and what it answers: plain picklable records."""

from __future__ import annotations

from dataclasses import dataclass

from store.records import ChatParams, MessageStatus


@dataclass(frozen=True, slots=True)
class NewChat:
    """How to create the chat if it does not exist yet."""

    params: ChatParams
    system_prompt: str
    system_tokens: int


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """A user message, counted by the gateway with the tokenizer of `counted_for` (a model)."""

    turn_id: str
    user_id: str
    content: str
    tokens: int
    counted_for: str
    create: NewChat | None = None


@dataclass(frozen=True, slots=True)
class Recount:
    """The chat uses another model than the gateway counted for: count again and resend."""

    model: str


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """What the model will see: message count and tokens of the context window."""

    messages: int
    tokens: int
    context_tokens: int


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """Everything the gateway needs to ask the LLM for this turn's answer."""

    turn_id: str
    chat_id: str
    created: bool
    user_message_id: int
    messages: tuple[dict[str, str], ...]
    params: ChatParams
    evicted: int
    window: WindowInfo


@dataclass(frozen=True, slots=True)
class TurnResult:
    """How a turn ended: the stored answer's id (None when nothing was stored)."""

    turn_id: str
    assistant_message_id: int | None
    status: MessageStatus | None
    finish_reason: str
    window: WindowInfo
