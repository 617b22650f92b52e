"""The /v1 JSON shapes: records to JSON objects, and request fields checked into typed values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from actors.protocol import WindowInfo
from gateways.service.events import TurnFinished, TurnStarted
from gateways.service.params import ChatOverrides
from store.errors import InvalidArgument
from store.records import ChatRecord, MessageRecord

OVERRIDE_FIELDS = frozenset(
    {
        "model",
        "system_prompt",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
    }
)


def timestamp(value: datetime) -> str:
    """Stored times are naive UTC; clients get RFC 3339 with a Z."""
    return value.isoformat(timespec="microseconds") + "Z"


def window(w: WindowInfo) -> dict[str, Any]:
    return {
        "messages": w.messages,
        "tokens": w.tokens,
        "context_tokens": w.context_tokens,
        "server_prompt_tokens": w.server_prompt_tokens,
        "correction": None if w.correction is None else round(w.correction, 4),
    }


def chat(record: ChatRecord, w: WindowInfo | None = None) -> dict[str, Any]:
    p = record.params
    body: dict[str, Any] = {
        "chat_id": record.id,
        "user_id": record.user_id,
        "status": record.status.value,
        "title": record.title,
        "params": {
            "model": p.model,
            "context_tokens": p.context_tokens,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "stop": list(p.stop),
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
        },
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }
    if w is not None:
        body["window"] = window(w)
    return body


def message(m: MessageRecord) -> dict[str, Any]:
    return {
        "message_id": m.seq,
        "role": m.role.value,
        "content": m.content,
        "tokens": m.tokens,
        "status": m.status.value,
        "finish_reason": m.finish_reason,
        "erased": m.erased,
        "created_at": timestamp(m.created_at),
    }


def started(event: TurnStarted) -> dict[str, Any]:
    return {
        "chat_id": event.chat_id,
        "user_message_id": event.user_message_id,
        "evicted": event.evicted,
        "window": window(event.window),
    }


def finished(event: TurnFinished) -> dict[str, Any]:
    return {
        "assistant_message_id": event.assistant_message_id,
        "finish_reason": event.finish_reason,
        "usage": {
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "total_tokens": event.prompt_tokens + event.completion_tokens,
            "source": event.usage_source,
        },
        "evicted": event.evicted,
        "window": window(event.window),
    }


# -- request fields ----------------------------------------------------------------------------


def overrides(body: dict[str, object]) -> ChatOverrides:
    """A create-chat body's overrides; unknown fields and wrong types are 400s naming the field."""
    unknown = sorted(set(body) - OVERRIDE_FIELDS - {"chat_id"})
    if unknown:
        raise InvalidArgument(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(OVERRIDE_FIELDS))}"
        )
    return ChatOverrides(
        model=_text(body, "model"),
        system_prompt=_text(body, "system_prompt"),
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        max_tokens=_integer(body, "max_tokens"),
        stop=_texts(body, "stop"),
        presence_penalty=_number(body, "presence_penalty"),
        frequency_penalty=_number(body, "frequency_penalty"),
    )


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string")
    return value


def _number(body: dict[str, object], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number")
    try:
        return float(value)
    except OverflowError:  # JSON integers have no size limit; floats do
        raise InvalidArgument(f"{name} is out of range") from None


def _integer(body: dict[str, object], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number")
    return value


def _texts(body: dict[str, object], name: str) -> tuple[str, ...] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidArgument(f"{name} must be a list of strings")
    return tuple(value)


def page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"page_size must be a whole number, got {raw!r}") from None


def flag(raw: str | None, name: str) -> bool:
    if raw is None or raw == "":
        return False
    value = raw.lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidArgument(f"{name} must be true or false, got {raw!r}")
