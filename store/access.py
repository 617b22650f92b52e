"""Who may reach a chat: the one ownership rule, applied alike by gateways and conversation actors."""

from __future__ import annotations

from store.errors import NotFound, PermissionDenied


def check_owner(chat_id: str, owner: str | None, user_id: str) -> None:
    """NotFound if the chat does not exist (`owner` None), PermissionDenied if it is another user's."""
    if owner is None:
        raise NotFound(f"chat {chat_id!r} does not exist")
    if owner != user_id:
        raise PermissionDenied(f"chat {chat_id!r} belongs to another user")
