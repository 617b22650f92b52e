"""Page tokens: what this service issued round-trips; anything forged is a 400, never a 500."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest

from gateways.service import paging
from store.base import ChatCursor
from store.errors import InvalidArgument


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_issued_tokens_round_trip() -> None:
    cursor = ChatCursor(datetime(2026, 1, 2, 3, 4, 5, 6), "c1")
    assert paging.chat_cursor(paging.chat_token(cursor)) == cursor
    assert paging.message_cursor(paging.message_token(41)) == 41
    assert paging.message_cursor(paging.message_token(paging.MAX_SEQ)) == paging.MAX_SEQ


@pytest.mark.parametrize(
    "payload",
    [
        {"s": 2**63},  # SQLite: OverflowError past a signed 64-bit integer
        {"s": 2**32},
        {"s": -1},
        {"s": True},
        {"s": 1.5},
        "[" * 5000 + "]" * 5000,  # nested past the recursion limit once decoded
    ],
)
def test_forged_message_tokens(payload: object) -> None:
    token = (
        forged(payload)
        if not isinstance(payload, str)
        else base64.urlsafe_b64encode(payload.encode()).decode()
    )
    with pytest.raises(InvalidArgument):
        paging.message_cursor(token)


@pytest.mark.parametrize(
    "payload",
    [
        {"c": "2026-01-01T00:00:00", "i": "\ud800"},
        {"c": "2026-01-01T00:00:00+05:00", "i": "c1"},
        {"c": "not a time", "i": "c1"},
        {"c": 5, "i": "c1"},
        {"c": "2026-01-01T00:00:00", "i": "x" * 129},
        {"c": "2026-01-01T00:00:00"},
        [],
    ],
)
def test_forged_chat_tokens(payload: object) -> None:
    with pytest.raises(InvalidArgument):
        paging.chat_cursor(forged(payload))
