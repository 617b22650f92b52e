"""Token-window rules: which messages the model sees. Pure: no I/O, nothing of ours imported."""

from __future__ import annotations

import math
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
    When a message does not fit, eviction goes down to `evict_to` x budget (a low-water mark),
    so that the following turns fit without evicting and the prompt's prefix stays the same
    for them (what prompt caches reuse); 1.0 evicts only what the message needs.
    """

    context_tokens: int
    reserve_tokens: int
    entries: list[Entry] = field(default_factory=list)
    evict_to: float = 1.0

    def __post_init__(self) -> None:
        if self.reserve_tokens < 1 or self.reserve_tokens >= self.context_tokens:
            raise WindowError("reserve_tokens must be at least 1 and below context_tokens")
        if not 0 < self.evict_to <= 1:
            raise WindowError(f"evict_to must be above 0 and at most 1, got {self.evict_to}")

    @property
    def prompt_tokens(self) -> int:
        """Tokens of the prompt these entries make, reply priming included."""
        return sum(e.tokens for e in self.entries) + REPLY_PRIMING_TOKENS

    @property
    def budget(self) -> int:
        """The most a prompt may hold."""
        return self.context_tokens - self.reserve_tokens

    @property
    def low_water(self) -> int:
        """What a prompt is brought down to when the window is full."""
        return math.floor(self.evict_to * self.budget)

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
        if excess <= 0:
            return []
        # Down to the low-water mark if evicting can get there; for a message too large for
        # that, only as far as the budget needs (a message that fits is never refused).
        slack = self.budget - self.low_water
        if tokens <= self.max_message_tokens - slack:
            excess += slack
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
