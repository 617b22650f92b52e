"""Opaque page tokens for list calls: base64url JSON of where the previous page ended."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from gateways.service.text import is_unicode
from store.base import MAX_ID_LENGTH, ChatCursor
from store.errors import InvalidArgument

BAD_TOKEN = "page_token is not one this service issued: start from the first page"
# Message positions are stored as 32-bit unsigned integers; a forged token holding a larger one
# would overflow the driver (SQLite raises OverflowError past 2**63) instead of finding nothing.
MAX_SEQ = 2**32 - 1


def _encode(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, object]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
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
    created, chat_id = payload.get("c"), payload.get("i")
    if not isinstance(created, str) or not isinstance(chat_id, str):
        raise InvalidArgument(BAD_TOKEN)
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        raise InvalidArgument(BAD_TOKEN) from None
    # Stored times are naive UTC; ids are what the store holds (no lone surrogates a driver chokes on).
    if when.tzinfo is not None or len(chat_id) > MAX_ID_LENGTH or not is_unicode(chat_id):
        raise InvalidArgument(BAD_TOKEN)
    return ChatCursor(when, chat_id)


def message_token(after_seq: int) -> str:
    return _encode({"s": after_seq})


def message_cursor(token: str) -> int:
    if not token:
        return 0
    seq = _decode(token).get("s")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise InvalidArgument(BAD_TOKEN)
    return seq


def page_size(requested: int, default: int, most: int) -> int:
    """0 means the default; more than `most` is capped; negative is an error."""
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative, got {requested}")
    return min(requested or default, most)
