"""The client's log of every turn it sent, checked against the database and the live windows."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from store import ChatStore
from store.records import MessageRecord, MessageStatus, Role
from tests.faults.hosted import host_windows


@dataclass
class Sent:
    """One turn as the client saw it: acknowledged with an answer, or failed with an error code."""

    chat_id: str
    content: str
    answer: str | None = None
    error: str | None = None
    detail: str = ""
    seconds: float = 0.0  # from the request to its answer or error

    @property
    def acknowledged(self) -> bool:
        return self.answer is not None


@dataclass
class Verdict:
    """What the database holds compared with what the client was told."""

    sent: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    misordered: int = 0
    half_stored: int = 0
    window_mismatches: int = 0
    windows_compared: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    slowest_acknowledged: float = 0.0
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        bad = (self.lost, self.duplicated, self.misordered, self.half_stored, self.window_mismatches)
        return not any(bad)

    def row(self) -> dict[str, Any]:
        errors = ", ".join(f"{code}: {n}" for code, n in sorted(self.errors.items())) or "none"
        return {
            "turns sent": self.sent,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "misordered": self.misordered,
            "half-stored": self.half_stored,
            "window mismatches": self.window_mismatches,
            "errors by code": errors,
            "slowest acknowledged turn s": round(self.slowest_acknowledged, 1),
        }


class Ledger:
    """Every turn the load sent, in the order each chat's client sent them."""

    def __init__(self) -> None:
        self.turns: list[Sent] = []
        self._recorded = asyncio.Event()

    def record(self, turn: Sent) -> None:
        self.turns.append(turn)
        self._recorded.set()

    async def until_acknowledged(self, count: int) -> None:
        """Return once `count` turns in all have been acknowledged."""
        while sum(t.acknowledged for t in self.turns) < count:
            self._recorded.clear()
            await self._recorded.wait()

    def chats(self) -> dict[str, list[Sent]]:
        by_chat: dict[str, list[Sent]] = collections.defaultdict(list)
        for turn in self.turns:
            by_chat[turn.chat_id].append(turn)
        return by_chat

    async def verify(self, store: ChatStore, expected: Callable[[str], str]) -> Verdict:
        """Nothing acknowledged missing, nothing duplicated, each chat in the client's order.

        `expected` gives the whole answer the LLM sends to a question.
        """
        verdict = Verdict(sent=len(self.turns))
        for turn in self.turns:
            if turn.acknowledged:
                verdict.acknowledged += 1
                verdict.slowest_acknowledged = max(verdict.slowest_acknowledged, turn.seconds)
            else:
                code = turn.error or "unknown"
                verdict.errors[code] = verdict.errors.get(code, 0) + 1
                verdict.messages[f"{code} {turn.detail}".strip()] += 1
        for chat_id, turns in self.chats().items():
            stored = await store.list_messages(chat_id, include_erased=True)
            _check_chat(chat_id, turns, stored, verdict)
            _check_answers(chat_id, stored, expected, verdict)
        return verdict


def _check_chat(chat_id: str, turns: list[Sent], stored: list[MessageRecord], verdict: Verdict) -> None:
    users = [m for m in stored if m.role is Role.USER]
    answers = {m.turn_id: m for m in stored if m.role is Role.ASSISTANT}
    if len(answers) != sum(m.role is Role.ASSISTANT for m in stored):
        verdict.duplicated += 1
        verdict.problems.append(f"{chat_id}: a turn has two answers")
    count = collections.Counter(m.content for m in users)
    last_seq = 0
    for turn in turns:
        copies = [m for m in users if m.content == turn.content]
        if count[turn.content] > 1:
            verdict.duplicated += 1
            verdict.problems.append(f"{chat_id}: {turn.content!r} stored {count[turn.content]} times")
        if not turn.acknowledged:
            continue  # a failed turn may or may not be stored; its answer is checked below
        if not copies:
            verdict.lost += 1
            verdict.problems.append(f"{chat_id}: acknowledged {turn.content!r} is not stored")
            continue
        user = copies[0]
        answer = answers.get(user.turn_id)
        if answer is None or answer.content != turn.answer or answer.status is not MessageStatus.COMPLETE:
            verdict.lost += 1
            verdict.problems.append(f"{chat_id}: the acknowledged answer to {turn.content!r} is not stored")
        if user.seq <= last_seq or (answer is not None and answer.seq != user.seq + 1):
            verdict.misordered += 1
            verdict.problems.append(f"{chat_id}: {turn.content!r} is out of the client's order")
        last_seq = answer.seq if answer is not None else user.seq


def _check_answers(
    chat_id: str, stored: list[MessageRecord], expected: Callable[[str], str], verdict: Verdict
) -> None:
    """Every stored answer is whole and flagged complete, or a prefix flagged interrupted."""
    questions = {m.turn_id: m.content for m in stored if m.role is Role.USER}
    for answer in (m for m in stored if m.role is Role.ASSISTANT):
        full = expected(questions.get(answer.turn_id, ""))
        whole = answer.status is MessageStatus.COMPLETE and answer.content == full
        partial = answer.status is MessageStatus.INTERRUPTED and full.startswith(answer.content)
        if not (whole or partial):
            verdict.half_stored += 1
            verdict.problems.append(f"{chat_id}: answer {answer.seq} is {answer.status} {answer.content!r}")


async def compare_windows(
    namespace: str, store: ChatStore, verdict: Verdict, chat_ids: Iterable[str] = ()
) -> int:
    """Each live chat's window in memory equals the one rebuilt from its active path; returns how many.

    The live chats are the deployment's conversation actors and, in the hosted placement, those of
    `chat_ids` that a host holds.
    """
    windows = await actor_windows(namespace) + await host_windows(namespace, chat_ids)
    for chat_id, window in windows:
        in_memory = [(m.seq, m.content) for m in window]
        rebuilt = [(m.seq, m.content) for m in await store.list_path(chat_id)]
        if in_memory != rebuilt:
            verdict.window_mismatches += 1
            verdict.problems.append(f"{chat_id}: window {in_memory[-2:]} != store {rebuilt[-2:]}")
    verdict.windows_compared = len(windows)
    return len(windows)


async def actor_windows(namespace: str) -> list[tuple[str, list[MessageRecord]]]:
    """Each live conversation actor's chat and window in memory."""
    windows = []
    for name in await asyncio.to_thread(live_actor_names, namespace):
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, namespace)
            windows.append((name.removeprefix("chat:"), await actor.window_messages.remote()))
        except (ValueError, RayActorError, RayTaskError):
            continue  # passivated or killed since it was listed: nothing in memory to compare
    return windows


def live_actor_names(namespace: str) -> list[str]:
    """Names of the live conversation actors of one deployment (Ray's registry of named actors)."""
    named = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in named if a["namespace"] == namespace and a["name"].startswith("chat:")]
