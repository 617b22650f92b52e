"""The live set: a cap, least recently used order, and a grace for fresh activations."""

from __future__ import annotations

import pytest

from actors.liveset import LiveSet


def test_candidates_come_least_recently_used_first() -> None:
    live = LiveSet(cap=3)
    for t, chat in enumerate(["a", "b", "c"]):
        live.add(chat, float(t))
    assert live.full and len(live) == 3
    live.touch(["a", "not-live"], 10.0)
    assert live.candidates(now=20.0, grace=5.0) == ["b", "c", "a"]
    assert "not-live" not in live


def test_recently_used_chats_are_spared_for_the_grace() -> None:
    live = LiveSet(cap=2)
    live.add("old", 0.0)
    live.add("new", 9.5)
    assert live.candidates(now=10.0, grace=1.0) == ["old"]
    assert live.candidates(now=10.0, grace=20.0) == []


def test_removing_frees_room_once() -> None:
    live = LiveSet(cap=1)
    live.add("a", 0.0)
    assert live.remove("a") and not live.remove("a")
    assert not live.full


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LiveSet(cap=0)
