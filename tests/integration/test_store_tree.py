"""The message tree's contract, on SQLite and MariaDB/MySQL: branches, paths, siblings, switches."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from actors.conversation import Conversation
from actors.protocol import NewChat, TurnPlan, TurnRequest
from store import ChatStore
from store.errors import InvalidArgument, NotFound, StaleState
from store.records import ChatParams, MessageRecord, Role
from tests.integration.test_store_contract import chat, msg


def child(
    chat_id: str, seq: int, parent: int | None, role: Role = Role.USER, content: str = ""
) -> MessageRecord:
    return msg(chat_id, seq, role, content or f"m{seq}", parent_seq=parent)


async def branchy(store: ChatStore, chat_id: str) -> None:
    """1 system, 2 user; 3 and 4 two answers to 2; 5-6 follow 3, 7 follows 4; the active leaf is 7.

    1 ─ 2 ┬ 3 ─ 5 ─ 6
          └ 4 ─ 7
    """
    await store.create_chat(chat(chat_id), [msg(chat_id, 1, Role.SYSTEM), msg(chat_id, 2)])
    await store.write(chat_id, 0, append=[child(chat_id, 3, 2, Role.ASSISTANT)])
    await store.write(chat_id, 1, append=[child(chat_id, 5, 3), child(chat_id, 6, 5, Role.ASSISTANT)])
    await store.write(chat_id, 2, append=[child(chat_id, 4, 2, Role.ASSISTANT)])  # a regenerate
    await store.write(chat_id, 3, append=[child(chat_id, 7, 4)])


def seqs(messages: list[MessageRecord]) -> list[int]:
    return [m.seq for m in messages]


async def test_a_new_chats_first_messages_are_a_chain_ending_at_the_active_leaf(
    store: ChatStore, chat_id: str
) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1, Role.SYSTEM), msg(chat_id, 2), msg(chat_id, 3)])
    assert [m.parent_seq for m in await store.list_messages(chat_id)] == [None, 1, 2]
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.active_leaf == 3
    await store.create_chat(chat(chat_id + "-empty"), [])
    empty = await store.get_chat(chat_id + "-empty")
    assert empty is not None and empty.active_leaf is None
    assert await store.list_path(chat_id + "-empty") == []


async def test_a_new_chat_that_is_not_a_chain_is_refused_whole(store: ChatStore, chat_id: str) -> None:
    with pytest.raises(InvalidArgument):
        await store.create_chat(
            chat(chat_id), [msg(chat_id, 1), child(chat_id, 2, None), child(chat_id, 3, 1)]
        )
    with pytest.raises(InvalidArgument):
        await store.create_chat(chat(chat_id), [msg(chat_id, 2), msg(chat_id, 1)])
    with pytest.raises(InvalidArgument):
        await store.create_chat(chat(chat_id, active_leaf=1), [msg(chat_id, 1), msg(chat_id, 2)])
    assert await store.get_chat(chat_id) is None


async def test_paths_run_from_the_root_to_a_leaf(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.active_leaf == 7  # the last appended, by default
    assert seqs(await store.list_path(chat_id)) == [1, 2, 4, 7]
    assert seqs(await store.list_path(chat_id, leaf=6)) == [1, 2, 3, 5, 6]
    assert seqs(await store.list_path(chat_id, leaf=3)) == [1, 2, 3]  # any message ends a path
    assert [m.parent_seq for m in await store.list_path(chat_id, leaf=6)] == [None, 1, 2, 3, 5]
    assert seqs(await store.list_messages(chat_id)) == [1, 2, 3, 4, 5, 6, 7]  # every branch


async def test_a_path_pages_in_order(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    assert seqs(await store.list_path(chat_id, leaf=6, limit=2)) == [1, 2]
    assert seqs(await store.list_path(chat_id, leaf=6, after_seq=2, limit=2)) == [3, 5]
    assert seqs(await store.list_path(chat_id, leaf=6, after_seq=5, limit=2)) == [6]
    assert await store.list_path(chat_id, leaf=6, after_seq=6) == []
    assert seqs(await store.list_path(chat_id, leaf=3, after_seq=2)) == [3]


async def test_a_path_of_a_missing_message_or_chat(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    with pytest.raises(NotFound):
        await store.list_path(chat_id, leaf=99)
    with pytest.raises(NotFound):
        await store.list_path(chat_id + "-other", leaf=1)
    assert await store.list_path(chat_id + "-other") == []


async def test_erased_messages_stay_on_their_path(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    await store.write(chat_id, 4, erase=[2, 3])
    # The walk goes through erased messages: they are left out of the window, not of the tree.
    assert seqs(await store.list_path(chat_id, leaf=6)) == [1, 5, 6]
    everything = await store.list_path(chat_id, leaf=6, include_erased=True)
    assert [(m.seq, m.erased) for m in everything] == [
        (1, False),
        (2, True),
        (3, True),
        (5, False),
        (6, False),
    ]
    assert seqs(await store.list_path(chat_id)) == [1, 4, 7]


async def test_siblings_give_each_message_its_count_and_position(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    found = await store.siblings(chat_id, [1, 2, 3, 4, 7, 99])
    assert found == {1: (1,), 2: (2,), 3: (3, 4), 4: (3, 4), 7: (7,)}
    assert (len(found[4]), found[4].index(4) + 1) == (2, 2)  # ‹2/2›
    assert await store.siblings(chat_id, []) == {}
    assert await store.siblings(chat_id + "-other", [1]) == {}


async def test_first_messages_edited_are_sibling_roots(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1), msg(chat_id, 2, Role.ASSISTANT)])
    await store.write(chat_id, 0, append=[child(chat_id, 3, None, content="edited first message")])
    assert seqs(await store.list_path(chat_id)) == [3]
    assert await store.siblings(chat_id, [1, 2, 3]) == {1: (1, 3), 2: (2,), 3: (1, 3)}
    await store.create_chat(chat(chat_id + "-b"), [msg(chat_id + "-b", 1)])
    assert (await store.siblings(chat_id + "-b", [1]))[1] == (1,)  # other chats' roots are not siblings


async def test_a_switch_leads_to_the_newest_leaf_under_a_message(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    assert await store.leaf_under(chat_id, 2) == 7  # newest child of 2 is 4, then 7
    assert await store.leaf_under(chat_id, 3) == 6
    assert await store.leaf_under(chat_id, 1) == 7
    assert await store.leaf_under(chat_id, 6) == 6
    with pytest.raises(NotFound):
        await store.leaf_under(chat_id, 99)
    with pytest.raises(NotFound):
        await store.leaf_under(chat_id + "-other", 1)
    version = await store.write(chat_id, 4, active_leaf=await store.leaf_under(chat_id, 3))
    stored = await store.get_chat(chat_id)
    assert stored is not None and (stored.version, stored.active_leaf) == (version, 6)
    assert seqs(await store.list_path(chat_id)) == [1, 2, 3, 5, 6]
    await store.write(chat_id, version, erase=[5])  # a write without active_leaf leaves it where it is
    assert seqs(await store.list_path(chat_id)) == [1, 2, 3, 6]


async def test_the_largest_seq_counts_every_branch(store: ChatStore, chat_id: str) -> None:
    assert await store.last_seq(chat_id) == 0
    await branchy(store, chat_id)
    await store.write(chat_id, 4, active_leaf=3)
    assert await store.last_seq(chat_id) == 7


async def test_a_write_with_a_bad_parent_or_leaf_writes_nothing(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    await store.create_chat(
        chat(chat_id + "-other"), [msg(chat_id + "-other", 1), msg(chat_id + "-other", 8)]
    )
    bad_writes = [
        {"append": [child(chat_id, 50, 42)]},  # no such parent
        {"append": [child(chat_id, 8, 8)]},  # its own parent
        {"append": [child(chat_id, 8, 9), child(chat_id, 9, 7)]},  # a parent after it
        {"active_leaf": 42},
        {"active_leaf": 8},  # the other chat's message
        {"append": [child(chat_id, 9, 8)]},  # the other chat's message
        {"append": [child(chat_id, 8, 7)], "active_leaf": 42},
        {"title": "a", "rename": "b"},
        {"rename": "x" * 201},
    ]
    for kwargs in bad_writes:
        with pytest.raises(InvalidArgument):
            await store.write(chat_id, 4, erase=[2], **kwargs)  # type: ignore[arg-type]
    stored = await store.get_chat(chat_id)
    assert stored is not None and (stored.version, stored.active_leaf) == (4, 7)
    assert [(m.seq, m.erased) for m in await store.list_messages(chat_id)] == [
        (s, False) for s in range(1, 8)
    ]
    with pytest.raises(StaleState):  # a stale version is told first, as before
        await store.write(chat_id, 3, append=[child(chat_id, 50, 42)])


async def test_removing_the_active_leaf_moves_it_up_to_what_stays(store: ChatStore, chat_id: str) -> None:
    await branchy(store, chat_id)
    await store.write(chat_id, 4, remove=[7])  # a withdrawn turn's user message
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.active_leaf == 4
    assert seqs(await store.list_path(chat_id)) == [1, 2, 4]
    await store.write(chat_id, 5, remove=[5, 6])  # off the active path: the leaf stays
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.active_leaf == 4
    root_only = chat_id + "-root"
    await store.create_chat(chat(root_only), [msg(root_only, 1)])
    await store.write(root_only, 0, remove=[1])
    emptied = await store.get_chat(root_only)
    assert emptied is not None and emptied.active_leaf is None
    assert await store.list_path(root_only) == []


async def test_rename_replaces_the_title_that_title_only_sets_once(store: ChatStore, chat_id: str) -> None:
    await store.create_chat(chat(chat_id), [msg(chat_id, 1)])
    await store.write(chat_id, 0, title="First question")
    await store.write(chat_id, 1, title="Ignored: the chat has a title")
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.title == "First question"
    await store.write(chat_id, 2, rename="Trip to Lisboa 🇵🇹")
    stored = await store.get_chat(chat_id)
    assert stored is not None and (stored.title, stored.version) == ("Trip to Lisboa 🇵🇹", 3)
    await store.write(chat_id, 3, rename="")
    await store.write(chat_id, 4, title="Named again")
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.title == "Named again"


async def test_a_path_longer_than_the_servers_recursion_limit_is_walked_whole(
    store: ChatStore, chat_id: str
) -> None:
    # MariaDB stops a recursive CTE after max_recursive_iterations (1000 by default) without an
    # error, MySQL 8 fails after cte_max_recursion_depth (1000): a long chat must still load whole.
    length = 1500
    await store.create_chat(chat(chat_id), [msg(chat_id, i, content="x") for i in range(1, length + 1)])
    assert seqs(await store.list_path(chat_id)) == list(range(1, length + 1))
    assert await store.leaf_under(chat_id, 1) == length
    # Siblings of a whole long path, asked in several IN lists: each message is an only child.
    assert await store.siblings(chat_id, range(1, length + 1)) == {s: (s,) for s in range(1, length + 1)}


# -- the conversation over the active path -------------------------------------------------------

SMALL = ChatParams("gpt-4o-mini", context_tokens=100, max_tokens=20)


async def turn(c: Conversation, content: str) -> TurnPlan:
    plan = await c.begin_turn(
        TurnRequest(uuid.uuid4().hex, "u1", content, 10, SMALL.model, NewChat(SMALL, "sys", 10))
    )
    assert isinstance(plan, TurnPlan)
    await c.complete_turn(plan.turn_id, f"re: {content}", 10, "stop")
    return plan


async def test_turns_write_a_chain_and_move_the_active_leaf(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    for content in ("one", "two", "three", "four", "five"):
        await turn(c, content)  # the 100-token window evicts as it goes
    everything = await store.list_messages(chat_id, include_erased=True)
    assert [m.parent_seq for m in everything] == [None, *range(1, len(everything))]
    stored = await store.get_chat(chat_id)
    assert stored is not None and stored.active_leaf == everything[-1].seq
    assert await c.snapshot() == await store.list_path(chat_id)


async def test_a_window_rebuilt_over_the_active_path_follows_a_branch(store: ChatStore, chat_id: str) -> None:
    c = Conversation(chat_id, store, 60)
    for content in ("one", "two", "three"):
        await turn(c, content)
    chat_now = await store.get_chat(chat_id)
    assert chat_now is not None and chat_now.active_leaf is not None
    answer = (await store.list_path(chat_id))[-1]
    # Another answer beside the last one, made the active leaf (what a regenerate will write).
    again = replace(answer, seq=answer.seq + 1, content="another answer", turn_id=None)
    await store.write(chat_id, chat_now.version, append=[again])
    fresh = Conversation(chat_id, store, 60)
    window = await fresh.snapshot()
    assert window == await store.list_path(chat_id)
    assert [m.content for m in window][-2:] == ["three", "another answer"]
    plan = await turn(fresh, "four")
    assert plan.messages[-3:] == (
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "another answer"},
        {"role": "user", "content": "four"},
    )
    four = (await store.list_path(chat_id))[-2]
    assert (four.content, four.parent_seq) == ("four", again.seq)
    assert await fresh.snapshot() == await store.list_path(chat_id)
