"""Sliding-window rate limits: per chat in the actor, per user in the gateway."""

from __future__ import annotations

import pytest

from actors.ratelimit import KeyedRateLimit, RateLimit


@pytest.mark.parametrize(
    ("limit", "times", "admitted"),
    [
        (0, [0, 0, 0, 0], [True, True, True, True]),  # 0 = no limit
        (2, [0, 1, 2], [True, True, False]),
        (2, [0, 1, 60, 61], [True, True, True, True]),  # the window slides
        (2, [0, 1, 59.9, 60.5], [True, True, False, True]),
        (1, [0, 30, 59, 60], [True, False, False, True]),
    ],
)
def test_at_most_limit_events_in_any_minute(limit: int, times: list[float], admitted: list[bool]) -> None:
    rate = RateLimit(limit)
    assert [rate.admit(t) == 0.0 for t in times] == admitted


def test_a_refusal_says_how_long_to_wait_and_is_not_counted() -> None:
    rate = RateLimit(2)
    rate.admit(10.0)
    rate.admit(20.0)
    assert rate.admit(30.0) == pytest.approx(40.0)
    assert rate.admit(70.0) == 0.0  # the one at 10 left the window; the refused one never counted


def test_keyed_limits_are_separate_per_key_and_bounded_in_memory() -> None:
    users = KeyedRateLimit(1, keys=2)
    assert users.admit("ana", 0) == 0.0
    assert users.admit("bia", 0) == 0.0
    assert users.admit("ana", 1) > 0
    assert users.admit("caio", 1) == 0.0  # a third key pushes out the least recently used (bia)
    assert users.admit("bia", 2) == 0.0
    assert KeyedRateLimit(0).admit("any", 0) == 0.0
