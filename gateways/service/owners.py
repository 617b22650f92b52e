"""Who owns a chat and which model it uses, from the gateway's cache or the store, before any actor call."""

from __future__ import annotations

from dataclasses import dataclass

from gateways.service.cache import LRU
from store.access import check_owner
from store.base import ChatStore
from store.errors import AlreadyExists

# A chat's owner and model never change, so remembering them is safe; the bound keeps it small.
CHATS_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class KnownChat:
    """What a gateway may remember of a chat."""

    owner: str
    model: str


class Owners:
    """Answers the ownership rule for a gateway without waking a chat's actor.

    A refusal is always checked against the store (the chat may have been deleted and its id
    taken again); the chat's actor checks the owner again on every call.
    """

    def __init__(self, store: ChatStore, size: int = CHATS_CACHED) -> None:
        self._store = store
        self._known: LRU[str, KnownChat] = LRU(size)

    def remember(self, chat_id: str, owner: str, model: str) -> None:
        self._known.put(chat_id, KnownChat(owner, model))

    def forget(self, chat_id: str) -> None:
        self._known.pop(chat_id)

    async def refuse_taken(self, chat_id: str) -> None:
        """AlreadyExists for a chat id in use (by anyone), answered from the store."""
        if await self._store.get_chat(chat_id) is not None:
            raise AlreadyExists(f"chat {chat_id!r} already exists")

    async def check(
        self, user_id: str, chat_id: str, *, trust_cache: bool = True, may_be_missing: bool = False
    ) -> KnownChat | None:
        """The chat if it is the user's; NotFound or PermissionDenied otherwise.

        `may_be_missing`: None for a chat that does not exist (yet) instead of NotFound.
        """
        known = self._known.get(chat_id) if trust_cache else None
        if known is not None and known.owner == user_id:
            return known
        chat = await self._store.get_chat(chat_id)
        if chat is None:
            self._known.pop(chat_id)
            if may_be_missing:
                return None
        known = self._known.put(chat_id, KnownChat(chat.user_id, chat.params.model)) if chat else None
        check_owner(chat_id, known.owner if known else None, user_id)
        return known
