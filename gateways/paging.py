"""Opaque page tokens for list calls: base64url JSON of where the previous page ended."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from store.base import ChatCursor
from store.errors import InvalidArgument

BAD_TOKEN = "page_token is not one this service issued: start from the first page"


def _encode(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, object]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidArgument(BAD_TOKEN) from None
    if not isinstance(payload, dict):
        raise InvalidArgument(BAD_TOKEN)
    return payload


def chat_token(cursor: ChatCursor) -> str:
    return _encode({"c": cursor.created_at.isoformat(), "i": cursor.chat_id})


def chat_cursor(token: str) -> ChatCursor | None:
    if not token:
        return None
    payload = _decode(token)
    try:
        return ChatCursor(datetime.fromisoformat(str(payload["c"])), str(payload["i"]))
    except (KeyError, ValueError):
        raise InvalidArgument(BAD_TOKEN) from None


def message_token(after_seq: int) -> str:
    return _encode({"s": after_seq})


def message_cursor(token: str) -> int:
    if not token:
        return 0
    seq = _decode(token).get("s")
    if not isinstance(seq, int) or seq < 0:
        raise InvalidArgument(BAD_TOKEN)
    return seq


def page_size(requested: int, default: int, most: int) -> int:
    """0 means the default; more than `most` is capped; negative is an error."""
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative, got {requested}")
    return min(requested or default, most)
