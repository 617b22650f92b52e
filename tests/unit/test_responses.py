"""JSON bodies: UTF-8 text, and ASCII escapes only for what UTF-8 cannot carry."""

from __future__ import annotations

import json

from gateways.http.responses import COMPACT, json_bytes


def test_accents_and_emoji_are_utf8_not_escapes() -> None:
    body = json_bytes({"content": "Qual é a capital? 🙂"})
    assert body == '{"content": "Qual é a capital? 🙂"}'.encode()


def test_a_lone_surrogate_falls_back_to_ascii_escapes_for_that_body() -> None:
    """Some LLM servers split an emoji's surrogate pair across stream chunks."""
    body = json_bytes({"text": "meio \ud83d", "é": 1}, COMPACT)
    assert body == b'{"text":"meio \\ud83d","\\u00e9":1}'
    assert json.loads(body) == {"text": "meio \ud83d", "é": 1}
