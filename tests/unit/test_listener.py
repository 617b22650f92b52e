"""The HTTP connection cap: the longest-waiting connection makes room; busy ones never do."""

from __future__ import annotations

import asyncio
from typing import cast

from gateways.http.listener import Connections


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def transports(n: int) -> list[asyncio.Transport]:
    return [cast(asyncio.Transport, FakeTransport()) for _ in range(n)]


def aborted(t: asyncio.Transport) -> bool:
    return cast(FakeTransport, t).aborted


def test_below_the_cap_every_connection_is_admitted() -> None:
    c = Connections(3)
    assert all(c.admit(t) for t in transports(3)) and len(c) == 3


def test_at_the_cap_the_longest_waiting_connection_is_closed_for_the_new_one() -> None:
    c = Connections(3)
    a, b, d, new = transports(4)
    for t in (a, b, d):
        c.admit(t)
    c.busy(a)  # a request in progress: never closed for room
    assert c.admit(new)
    assert not aborted(a) and aborted(b) and not aborted(d) and len(c) == 3


def test_a_connection_that_finished_a_request_waits_again_as_the_newest() -> None:
    c = Connections(2)
    a, b, new = transports(3)
    c.admit(a)
    c.admit(b)
    c.busy(a)
    c.done(a)  # a answered: now b has waited longest
    assert c.admit(new) and aborted(b) and not aborted(a)


def test_a_connection_whose_request_head_arrived_is_not_closed_before_its_handler_runs() -> None:
    c = Connections(2)
    a, b, new, newer = transports(4)
    c.admit(a)
    c.admit(b)
    c.requested(a)  # its head is parsed, its handler not yet running: b makes room instead
    assert c.admit(new) and aborted(b) and not aborted(a)
    c.busy(a)
    c.done(a)  # answered: waiting again, as the newest
    assert c.admit(newer) and aborted(new) and not aborted(a)


def test_when_every_connection_is_busy_the_new_one_is_turned_away() -> None:
    c = Connections(2)
    a, b, new = transports(3)
    for t in (a, b):
        c.admit(t)
        c.busy(t)
    assert not c.admit(new) and c.turned_away == 1
    assert not aborted(a) and not aborted(b)
    c.closed(a)
    assert c.admit(new)


def test_pipelined_requests_keep_a_connection_busy_until_the_last_is_done() -> None:
    c = Connections(1)
    a, new = transports(2)
    c.admit(a)
    c.busy(a)
    c.busy(a)
    c.done(a)
    assert not c.admit(new)
    c.done(a)
    assert c.admit(new) and aborted(a)


def test_a_connection_closed_before_it_was_tracked_changes_nothing() -> None:
    c = Connections(1)
    (a,) = transports(1)
    c.busy(a)
    c.done(a)
    c.closed(a)
    assert len(c) == 0
