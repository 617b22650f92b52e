"""Token-window rules: which messages the model sees. Pure: no I/O, nothing of ours imported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# OpenAI's cookbook formula: every reply is primed with <|start|>assistant<|message|>.
REPLY_PRIMING_TOKENS = 3


class WindowError(ValueError):
    """A message that can never fit the window, whatever is evicted."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One message as the window sees it: its order, its token count, whether it is pinned."""

    seq: int
    tokens: int
    pinned: bool = False


@dataclass(slots=True)
class Window:
    """The messages sent to the model, oldest first, within `context_tokens`.

    Room for `reserve_tokens` of answer is always kept: a prompt is admitted only if
    prompt + reserve <= context. Pinned entries (the system prompt) are never evicted.
    """

    context_tokens: int
    reserve_tokens: int
    entries: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reserve_tokens < 1 or self.reserve_tokens >= self.context_tokens:
            raise WindowError("reserve_tokens must be at least 1 and below context_tokens")

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt these entries make, reply priming included."""
        return sum(e.tokens for e in self.entries) + REPLY_PRIMING_TOKENS

    @property
    def budget(self) -> int:
        """The most a prompt may hold."""
        return self.context_tokens - self.reserve_tokens

    @property
    def max_message_tokens(self) -> int:
        """The largest message that fits once everything evictable is gone."""
        pinned = sum(e.tokens for e in self.entries if e.pinned)
        return self.budget - pinned - REPLY_PRIMING_TOKENS

    def plan(self, tokens: int) -> list[int]:
        """The seqs to evict, oldest first, so that a new message of `tokens` fits."""
        if tokens > self.max_message_tokens:
            raise WindowError(
                f"message is {tokens} tokens; this chat's window admits at most "
                f"{max(self.max_message_tokens, 0)}: shorten it or split it"
            )
        excess = self.prompt_tokens + tokens - self.budget
        evict: list[int] = []
        for entry in self.entries:
            if excess <= 0:
                break
            if not entry.pinned:
                evict.append(entry.seq)
                excess -= entry.tokens
        return evict

    def apply(self, evict: Iterable[int] = (), add: Iterable[Entry] = ()) -> None:
        """Drop the evicted seqs and append new entries in order."""
        gone = set(evict)
        self.entries = [e for e in self.entries if e.seq not in gone]
        self.entries.extend(add)

    def seqs(self) -> list[int]:
        return [e.seq for e in self.entries]
