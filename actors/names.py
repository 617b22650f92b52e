"""Where conversation actors live in Ray: their namespace and their names."""

from __future__ import annotations

NAMESPACE = "chatservice"


def actor_name(chat_id: str) -> str:
    return f"chat:{chat_id}"
