"""Window rules, table-driven: what is evicted, what is refused, what is kept."""

from __future__ import annotations

import pytest

from actors.window import REPLY_PRIMING_TOKENS as P
from actors.window import Entry, Window, WindowError

SYS = Entry(1, 10, pinned=True)


def window(context: int, reserve: int, *entries: Entry) -> Window:
    return Window(context, reserve, list(entries))


@pytest.mark.parametrize(
    ("name", "w", "tokens", "evict"),
    [
        ("empty window, message fits", window(100, 10), 50, []),
        ("fits exactly at the budget", window(100, 10, SYS), 100 - 10 - 10 - P, []),
        ("one over the budget evicts the oldest", window(100, 10, SYS, Entry(2, 20)), 58, [2]),
        (
            "evicts oldest first, only as many as needed",
            window(100, 10, SYS, Entry(2, 20), Entry(3, 20), Entry(4, 20)),
            40,
            [2, 3],
        ),
        (
            "pinned entries are skipped, never evicted",
            window(100, 10, Entry(2, 20), SYS, Entry(3, 20)),
            60,
            [2, 3],
        ),
        (
            "everything evictable goes for the largest message",
            window(100, 10, SYS, Entry(2, 30), Entry(3, 30)),
            100 - 10 - 10 - P,
            [2, 3],
        ),
        ("no system prompt: the whole budget is the user's", window(100, 10, Entry(2, 5)), 100 - 10 - P, [2]),
    ],
)
def test_plan_evicts_oldest_unpinned_until_prompt_and_reserve_fit(
    name: str, w: Window, tokens: int, evict: list[int]
) -> None:
    assert w.plan(tokens) == evict
    w.apply(evict, [Entry(99, tokens)])
    assert w.prompt_tokens + w.reserve_tokens <= w.context_tokens


@pytest.mark.parametrize(
    ("w", "tokens"),
    [
        (window(100, 10), 100 - 10 - P + 1),
        (window(100, 10, SYS, Entry(2, 5)), 100 - 10 - 10 - P + 1),
        (window(100, 10, Entry(1, 95, pinned=True)), 1),
    ],
)
def test_a_message_that_can_never_fit_is_refused_with_the_limit(w: Window, tokens: int) -> None:
    with pytest.raises(WindowError, match=rf"message is {tokens} tokens; .* admits at most \d+"):
        w.plan(tokens)


@pytest.mark.parametrize(("context", "reserve"), [(100, 0), (100, 100), (100, 150), (0, 1)])
def test_reserve_must_leave_room_for_a_prompt(context: int, reserve: int) -> None:
    with pytest.raises(WindowError, match="reserve_tokens"):
        Window(context, reserve)


def test_prompt_tokens_count_reply_priming_and_every_entry() -> None:
    w = window(1000, 100, SYS, Entry(2, 7))
    assert w.prompt_tokens == 10 + 7 + P
    assert w.budget == 900
    assert w.max_message_tokens == 900 - 10 - P


def test_apply_drops_evicted_and_appends_in_order() -> None:
    w = window(1000, 100, SYS, Entry(2, 1), Entry(3, 1))
    w.apply([2], [Entry(4, 1), Entry(5, 1)])
    assert w.seqs() == [1, 3, 4, 5]
    w.apply()
    assert w.seqs() == [1, 3, 4, 5]
