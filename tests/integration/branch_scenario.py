"""Random mixes of turns, regenerates, edits, switches, renames, kills and stale activations on one chat.

A `Scenario` plays `Step`s on two activations of one chat (two Conversations: the second one is
a stale activation whenever the first one wrote since it last looked) and, after every step,
checks what the store holds against what the callers were told (`Ledger`), and every window
whose activation is at the store's version against a rebuild from the store.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass, field

from actors.conversation import Conversation
from actors.protocol import Edit, NewChat, Regenerate, TurnPlan, TurnRequest, TurnResult
from store import ChatStore
from store.errors import ChatServiceError
from store.records import ChatParams, Role

MODEL = "gpt-4o-mini"
# A small window: a few turns fill it, so turns evict and some questions leave it.
NEW = NewChat(ChatParams(MODEL, context_tokens=160, max_tokens=20), "sys", 10)
KINDS = ("send", "regenerate", "edit", "switch", "rename", "kill")
# How a turn ends: completed, aborted with a partial answer or none, withdrawn, finished by a
# fresh activation after its own died, overtaken by the other activation, shrunk, or completed
# while another tab's turn waits behind it on the same activation.
ENDS = ("complete", "partial", "empty", "withdraw", "killed", "stale", "shrink", "tab")


@dataclass(frozen=True)
class Step:
    kind: str
    who: int  # which activation acts: 0 or 1
    pick: int  # which message (of the tree, in seq order; 0 for a regenerate: the last), or title
    tokens: int
    end: str


@dataclass
class Ledger:
    """What the callers were told: every acknowledged message must be stored as told, once."""

    begun: set[str] = field(default_factory=set)  # every turn id sent
    users: dict[str, tuple[int, str]] = field(default_factory=dict)  # turn id: (seq, content)
    answers: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # turn id: (seq, parent, text)
    withdrawn: set[str] = field(default_factory=set)
    done: collections.Counter[str] = field(default_factory=collections.Counter)  # what succeeded
    refused: collections.Counter[str] = field(default_factory=collections.Counter)  # what, and why not


class Scenario:
    def __init__(self, store: ChatStore, chat_id: str) -> None:
        self.store = store
        self.chat_id = chat_id
        self.convs = [self._fresh(), self._fresh()]
        self.ledger = Ledger()
        self._names = itertools.count(1)

    def _fresh(self) -> Conversation:
        return Conversation(self.chat_id, self.store, 60)

    async def start(self) -> None:
        await self._turn(0, self._request("send", 0, 10, create=NEW), "complete")
        await self.check()

    async def play(self, step: Step, check: bool = True) -> None:
        if step.kind == "switch":
            seq = await self._pick(step.pick)
            await self._call("switch", self.convs[step.who].switch("u1", seq))
        elif step.kind == "rename":
            await self._call(
                "rename", self.convs[step.who].rename("u1", f"title {step.pick}" if step.pick else "")
            )
        elif step.kind == "kill":
            self.convs[step.who] = self._fresh()
        else:
            await self._turn(step.who, await self._branch(step), step.end)
        if check:  # not while another caller is half-way through a change: the store moves under it
            await self.check()

    async def _branch(self, step: Step) -> TurnRequest:
        if step.kind == "send":
            return self._request("send", 0, step.tokens)
        if step.kind == "edit":
            return self._request("edit", await self._pick(step.pick, Role.USER), step.tokens)
        seq = await self._pick(step.pick, Role.ASSISTANT) if step.pick else 0
        return self._request("regenerate", seq, 0)

    def _request(self, kind: str, seq: int, tokens: int, create: NewChat | None = None) -> TurnRequest:
        name = f"m{next(self._names)}"
        branch = Edit(seq) if kind == "edit" else Regenerate(seq or None) if kind == "regenerate" else None
        content = "" if kind == "regenerate" else name
        return TurnRequest(name, "u1", content, tokens, MODEL, create, branch=branch)

    async def _pick(self, pick: int, role: Role | None = None) -> int:
        """A message of the tree (of `role` mostly), erased ones too; now and then one that does not exist."""
        stored = await self.store.list_messages(self.chat_id, include_erased=True)
        seqs = [m.seq for m in stored if role is None or pick % 5 == 0 or m.role is role]
        return seqs[pick % len(seqs)] if pick % 7 and seqs else max(m.seq for m in stored) + pick + 1

    async def _turn(self, who: int, req: TurnRequest, end: str) -> None:
        conv = self.convs[who]
        self.ledger.begun.add(req.turn_id)
        plan = await self._call(f"begin {type(req.branch).__name__}", conv.begin_turn(req))
        if not isinstance(plan, TurnPlan):
            return
        await self._check_prompt(plan)
        if not isinstance(req.branch, Regenerate):
            self.ledger.users[req.turn_id] = (plan.user_message_id, req.content)
        text = f"re: {req.turn_id}"
        if end == "withdraw":
            if await self._call("withdraw", conv.withdraw_turn(req.turn_id)) is not False:
                self.ledger.users.pop(req.turn_id, None)
                self.ledger.withdrawn.add(req.turn_id)
            return
        if end == "killed":  # its activation died: a fresh one is given the rest of the turn
            conv = self.convs[who] = self._fresh()
            await self._call("renew", conv.renew_turn(req.turn_id, plan.user_message_id))
        elif end == "stale":
            await self._turn(1 - who, self._request("send", 0, 5), "complete")
        elif end == "shrink":
            await self._call("shrink", conv.shrink_turn(req.turn_id, 40, plan.user_message_id))
        elif end == "tab":  # another tab's turn on the same activation waits behind this one
            kind = ("send", "regenerate", "edit")[len(req.turn_id) % 3]
            seq = plan.user_message_id if kind == "edit" else 0
            other = asyncio.ensure_future(self._turn(who, self._request(kind, seq, 5), "complete"))
            await asyncio.sleep(0.01)
        if end in ("partial", "empty"):
            partial = text[: len(text) // 2] if end == "partial" else ""
            ending = conv.abort_turn(req.turn_id, partial, 2, "cancelled", plan.user_message_id)
            text = partial
        else:
            ending = conv.complete_turn(req.turn_id, text, 5, "stop", None, plan.user_message_id)
        result = await self._call(f"end {end}", ending)
        if isinstance(result, TurnResult) and result.assistant_message_id is not None:
            self.ledger.answers[req.turn_id] = (result.assistant_message_id, plan.user_message_id, text)
        if end == "tab":
            await other

    async def _call(self, what: str, call: object) -> object:
        """An operation's result, or False if it was refused with one of our errors (never another)."""
        try:
            result = await call  # type: ignore[misc]
        except ChatServiceError as exc:
            self.ledger.refused[f"{what}: {type(exc).__name__}"] += 1
            return False
        self.ledger.done[what] += 1
        return result if result is not None else True

    async def _check_prompt(self, plan: TurnPlan) -> None:
        path = await self.store.list_path(self.chat_id, leaf=plan.user_message_id)
        assert list(plan.messages) == [{"role": m.role.value, "content": m.content} for m in path]
        chat = await self.store.get_chat(self.chat_id)
        assert chat is not None and chat.active_leaf == plan.user_message_id

    async def check(self) -> None:
        """Nothing acknowledged lost or duplicated; each window at the store's version equals its rebuild."""
        stored = await self.store.list_messages(self.chat_id, include_erased=True)
        by_seq = {m.seq: m for m in stored}
        kinds = collections.Counter((m.turn_id, m.role) for m in stored if m.turn_id)
        assert all(n == 1 for n in kinds.values()), "a turn stored two messages of one role"
        assert all(t in self.ledger.begun for t, _ in kinds), "a message of no turn"
        assert not any(t in self.ledger.withdrawn for t, _ in kinds), "a withdrawn turn left a message"
        for turn_id, (seq, content) in self.ledger.users.items():
            m = by_seq[seq]
            assert (m.role, m.content, m.turn_id) == (Role.USER, content, turn_id)
        for turn_id, (seq, parent, text) in self.ledger.answers.items():
            m = by_seq[seq]
            assert (m.role, m.content, m.turn_id, m.parent_seq) == (Role.ASSISTANT, text, turn_id, parent)
        for m in stored:
            if m.role is Role.ASSISTANT:
                assert m.parent_seq is not None and by_seq[m.parent_seq].role is Role.USER
        chat = await self.store.get_chat(self.chat_id)
        assert chat is not None
        rebuilt = [(m.seq, m.content) for m in await self.store.list_path(self.chat_id)]
        for conv in self.convs:
            if conv.chat is not None and conv.chat.version == chat.version:
                assert conv.chat.active_leaf == chat.active_leaf
                assert [(m.seq, m.content) for m in conv.window_messages()] == rebuilt
