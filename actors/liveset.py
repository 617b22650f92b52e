"""Which conversations are live, least recently used first, and which to passivate for room. Pure."""

from __future__ import annotations

from collections import OrderedDict


class LiveSet:
    """At most `cap` live chats; each remembers when it was last admitted or used."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self._last_used: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last_used)

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._last_used

    @property
    def full(self) -> bool:
        return len(self._last_used) >= self.cap

    def add(self, chat_id: str, now: float) -> None:
        self._last_used[chat_id] = now
        self._last_used.move_to_end(chat_id)

    def touch(self, chat_ids: list[str], now: float) -> None:
        """Mark live chats used now; chats that are not live are ignored."""
        for chat_id in chat_ids:
            if chat_id in self._last_used:
                self.add(chat_id, now)

    def remove(self, chat_id: str) -> bool:
        return self._last_used.pop(chat_id, None) is not None

    def candidates(self, now: float, grace: float) -> list[str]:
        """Chats to try passivating, least recently used first, sparing those used within `grace` s.

        A chat admitted a moment ago may not have received its first call yet; the grace keeps
        an activation from being passivated before it has done its work.
        """
        return [c for c, used in self._last_used.items() if now - used >= grace]
