"""WhatsApp rules: the 1,600 split (sentences, lines, emoji), a sender's chat ids, commands."""

from __future__ import annotations

import re

import pytest

from gateways.service.ids import check_chat_id, is_reserved
from gateways.whatsapp.rules import (
    MAX_CHARS,
    chat_id_for,
    generation_of,
    id_key,
    is_new_command,
    split_message,
    units,
)


def test_a_short_answer_is_one_part_and_blank_is_none() -> None:
    assert split_message("  Olá! Tudo bem?  ") == ["Olá! Tudo bem?"]
    assert split_message(" \n ") == []
    assert split_message("x" * MAX_CHARS) == ["x" * MAX_CHARS]


def test_units_count_emoji_outside_the_bmp_twice() -> None:
    assert units("abc") == 3 and units("é") == 1 and units("😀") == 2 and units("🇧🇷") == 4


def test_paragraphs_win_over_lines_over_sentences() -> None:
    a, b, c = "A" * 900, "B" * 500, "C" * 900
    # Each text has a later boundary of a lesser kind; the better kind wins.
    assert split_message(f"{a}\n\n{b}\n{c}") == [a, f"{b}\n{c}"]
    assert split_message(f"{a}\n{b}. {c}") == [a, f"{b}. {c}"]
    assert split_message(f"{a}. {b} {c}") == [f"{a}.", f"{b} {c}"]


def test_sentences_are_kept_whole_with_their_punctuation() -> None:
    sentences = [f"Frase número {i} termina aqui{'!' if i % 3 else '.'}" for i in range(120)]
    text = " ".join(sentences)
    parts = split_message(text)
    assert len(parts) > 1 and all(units(p) <= MAX_CHARS for p in parts)
    assert " ".join(parts) == text
    assert all(re.search(r"[.!]$", p) for p in parts)
    assert all(units(p) > MAX_CHARS // 2 for p in parts[:-1])


def test_a_sentence_end_inside_quotes_still_counts() -> None:
    text = "x" * 1000 + ' ele disse "chega!" e ' + "y" * 900
    first, second = split_message(text)
    assert first.endswith('"chega!"') and second.startswith("e y")


def test_text_without_boundaries_is_cut_hard_at_the_limit() -> None:
    parts = split_message("z" * 3500)
    assert [len(p) for p in parts] == [1600, 1600, 300]


@pytest.mark.parametrize(
    "emoji",
    [
        "😀",  # a surrogate pair in UTF-16
        "👍🏽",  # with a skin tone
        "👨‍👩‍👧‍👦",  # a ZWJ family of seven code points
        "🇧🇷",  # a flag: two regional indicators
        "❤️",  # with a variation selector
        "1️⃣",  # keycap
    ],
)
def test_emoji_are_never_cut_in_half(emoji: str) -> None:
    text = "a" + emoji * 1200  # no spaces: only hard cuts
    parts = split_message(text)
    assert len(parts) > 1 and "".join(parts) == text
    assert all(units(p) <= MAX_CHARS for p in parts)
    assert all(p.removeprefix("a").replace(emoji, "") == "" for p in parts)


def test_a_long_answer_with_emoji_and_words_splits_between_words() -> None:
    text = " ".join(["Olá 👋🏾 mundo 🇧🇷!"] * 300)
    parts = split_message(text)
    assert all(units(p) <= MAX_CHARS for p in parts)
    assert " ".join(parts) == text
    assert all(p.startswith("Olá") and p.endswith("!") for p in parts)


KEY = id_key(None, "twilio-auth-token")


def test_a_sender_gets_stable_valid_chat_ids_that_do_not_hold_the_number() -> None:
    sender = "whatsapp:+5511999998888"
    chat_id = chat_id_for(sender, 1, KEY)
    assert chat_id == chat_id_for(sender, 1, KEY) == check_chat_id(chat_id)  # concurrent firsts meet
    assert is_reserved(chat_id) and "5511999998888" not in chat_id
    assert re.fullmatch(r"wa:[0-9a-f]{32}:1", chat_id)
    assert chat_id_for(sender, 2, KEY) == chat_id.removesuffix("1") + "2"
    assert chat_id_for("whatsapp:+5511999998887", 1, KEY) != chat_id


def test_the_key_decides_the_ids_and_an_explicit_key_wins() -> None:
    sender = "whatsapp:+5511999998888"
    assert chat_id_for(sender, 1, id_key(None, "rotated-token")) != chat_id_for(sender, 1, KEY)
    assert id_key("explicit", "a") == id_key("explicit", "b") != id_key(None, "a")


def test_generations_of_new_and_older_whatsapp_chat_ids() -> None:
    assert generation_of(chat_id_for("whatsapp:+5511999998888", 12, KEY)) == 12
    assert generation_of("wa:+5511999998888:3") == 3  # named by the number, before keys: continued
    assert generation_of("wa:h0123456789abcdef01234567:2") == 2
    for other in ("wa:+5511999998888:x", "something-else", "wa:+5511999998888:1\n", "wa::1"):
        assert generation_of(other) is None


def test_an_odd_sender_address_gets_a_valid_id() -> None:
    odd = "whatsapp:ç ☃ / not a number"
    chat_id = chat_id_for(odd, 3, KEY)
    assert check_chat_id(chat_id) == chat_id and generation_of(chat_id) == 3
    assert chat_id != chat_id_for("whatsapp:other", 3, KEY)


@pytest.mark.parametrize(
    ("body", "new"), [("/new", True), (" NOVO ", True), ("/novo", True), ("novo?", False), ("hi", False)]
)
def test_new_commands(body: str, new: bool) -> None:
    assert is_new_command(body) is new
