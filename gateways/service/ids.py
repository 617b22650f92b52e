"""Chat and user ids: generated, or checked before anything is stored under them."""

from __future__ import annotations

import re
import uuid

from gateways.service.text import check_unicode
from store.base import MAX_ID_LENGTH
from store.errors import InvalidArgument

# Full matches only (re.fullmatch): `$` would also accept an id followed by a newline.
_CHAT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# WhatsApp conversations (gateways/whatsapp/rules.py) are created by the Twilio webhook alone.
RESERVED_PREFIX = "wa:"


def new_chat_id() -> str:
    return uuid.uuid4().hex


def check_user_id(user_id: str) -> str:
    if not user_id or not user_id.strip() or len(user_id) > MAX_ID_LENGTH or _CONTROL.search(user_id):
        raise InvalidArgument(f"user_id must be 1 to {MAX_ID_LENGTH} printable characters")
    return check_unicode("user_id", user_id)


def check_chat_id(chat_id: str) -> str:
    if not _CHAT_ID.fullmatch(chat_id):
        raise InvalidArgument(
            f"chat_id must be 1 to {MAX_ID_LENGTH} characters of letters, digits and _.:@+=- "
            "starting with a letter or digit"
        )
    return chat_id


def is_reserved(chat_id: str) -> bool:
    return chat_id[: len(RESERVED_PREFIX)].lower() == RESERVED_PREFIX


def check_new_chat_id(chat_id: str) -> str:
    """A chat id a client may create or send to: valid, and not in the WhatsApp namespace."""
    check_chat_id(chat_id)
    if is_reserved(chat_id):
        raise InvalidArgument(
            f"chat ids starting with {RESERVED_PREFIX!r} are reserved for WhatsApp conversations, "
            "which only the Twilio webhook creates and continues; choose another chat_id"
        )
    return chat_id
