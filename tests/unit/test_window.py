"""Window rules, table-driven: what is evicted, what is refused, what is kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def low_water_window(evict_to: float, *entries: Entry) -> Window:
    """Budget 90 (context 100, reserve 10); at 0.75 the low-water mark is 67."""
    return Window(100, 10, list(entries), evict_to=evict_to)


@pytest.mark.parametrize(
    ("name", "w", "tokens", "evict"),
    [
        ("a message that fits evicts nothing", low_water_window(0.5, SYS, Entry(2, 20)), 40, []),
        (
            "a full window at 1.0 evicts only what the message needs",
            low_water_window(1.0, SYS, Entry(2, 20), Entry(3, 20), Entry(4, 20)),
            20,
            [2],
        ),
        (
            "a full window at 0.75 evicts down to the low-water mark",
            low_water_window(0.75, SYS, Entry(2, 20), Entry(3, 20), Entry(4, 20)),
            20,
            [2, 3],
        ),
        (
            "pinned entries stay, at the low-water mark too",
            low_water_window(0.75, Entry(2, 20), SYS, Entry(3, 20), Entry(4, 20)),
            20,
            [2, 3],
        ),
        (
            "a message that just reaches the low-water mark alone evicts everything else",
            low_water_window(0.75, SYS, Entry(2, 30), Entry(3, 30)),
            67 - 10 - P,
            [2, 3],
        ),
        (
            "a message too large for the low-water mark evicts only what the budget needs",
            low_water_window(0.75, SYS, Entry(2, 10), Entry(3, 10)),
            60,
            [2],
        ),
        (
            "the largest message that fits is admitted whatever the mark",
            low_water_window(0.5, SYS, Entry(2, 30), Entry(3, 30)),
            90 - 10 - P,
            [2, 3],
        ),
    ],
)
def test_a_full_window_evicts_down_to_the_low_water_mark_when_it_can(
    name: str, w: Window, tokens: int, evict: list[int]
) -> None:
    assert w.plan(tokens) == evict
    w.apply(evict, [Entry(99, tokens)])
    assert w.prompt_tokens <= w.budget


@pytest.mark.parametrize("evict_to", [0.0, -0.5, 1.01, 2.0])
def test_evict_to_must_be_a_share_of_the_budget(evict_to: float) -> None:
    with pytest.raises(WindowError, match="evict_to"):
        Window(100, 10, evict_to=evict_to)


def _old_plan(w: Window, tokens: int) -> list[int]:
    """The rule before the low-water mark: evict the oldest unpinned until the message fits."""
    excess, evict = w.prompt_tokens + tokens - w.budget, []
    for e in w.entries:
        if excess > 0 and not e.pinned:
            evict.append(e.seq)
            excess -= e.tokens
    return evict


SIZES = st.lists(st.tuples(st.integers(1, 60), st.booleans()), max_size=12)


@given(sizes=SIZES, tokens=st.integers(1, 400))
def test_evict_to_one_keeps_the_rule_as_it_was(sizes: list[tuple[int, bool]], tokens: int) -> None:
    w = Window(400, 40, [Entry(i + 1, n, pinned) for i, (n, pinned) in enumerate(sizes)], evict_to=1.0)
    if tokens <= w.max_message_tokens:
        assert w.plan(tokens) == _old_plan(w, tokens)


@given(sizes=SIZES, tokens=st.integers(1, 400), evict_to=st.floats(0.5, 1.0))
def test_any_message_that_fits_is_admitted_and_the_mark_is_kept_when_reachable(
    sizes: list[tuple[int, bool]], tokens: int, evict_to: float
) -> None:
    entries = [Entry(i + 1, n, pinned) for i, (n, pinned) in enumerate(sizes)]
    w = Window(400, 40, entries, evict_to=evict_to)
    if tokens > w.max_message_tokens:
        return
    evict = w.plan(tokens)
    unpinned = [e.seq for e in entries if not e.pinned]
    assert evict == unpinned[: len(evict)]  # oldest first, pinned never
    fits = w.prompt_tokens + tokens <= w.budget
    w.apply(evict, [Entry(99, tokens)])
    assert w.prompt_tokens <= w.budget
    pinned = sum(e.tokens for e in entries if e.pinned)
    if evict and pinned + P + tokens <= w.low_water:
        assert w.prompt_tokens <= w.low_water  # reachable: reached
    if fits:
        assert evict == []  # nothing is evicted before the window is full


def test_at_the_low_water_mark_a_long_chat_keeps_its_prefix_for_several_turns() -> None:
    def evicting_turns(evict_to: float) -> list[bool]:
        """60 turns of a 40-token message and a 40-token answer: which turns evicted."""
        w, evicted = Window(1000, 100, [SYS], evict_to=evict_to), []
        for turn in range(60):
            evict = w.plan(40)
            evicted.append(bool(evict))
            w.apply(evict, [Entry(2 * turn + 2, 40), Entry(2 * turn + 3, 40)])
        return evicted

    everything = evicting_turns(1.0)
    first = everything.index(True)
    assert everything == [False] * first + [True] * (60 - first)  # once full, every turn evicts
    low_water = evicting_turns(0.75)
    assert low_water[:first] == everything[:first]
    assert sum(low_water[first:]) * 3 <= 60 - first  # once full, at most one turn in three evicts
