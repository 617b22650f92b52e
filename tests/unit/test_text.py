"""Text and ids from clients: whole Unicode, something visible, full-match ids, the reserved prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.service.ids import check_chat_id, check_new_chat_id, check_user_id, is_reserved
from gateways.service.params import ChatOverrides, apply_overrides, check_system_prompt
from gateways.service.text import check_unicode, is_unicode, shows_something
from gateways.settings import Settings, SettingsError, read_dotenv
from store.errors import InvalidArgument
from store.records import ChatParams

LONE = ("\ud800", "a\udfffb", "😀"[0] + "\ud83d")  # halves of a UTF-16 pair, as a cut emoji leaves


@pytest.mark.parametrize("text", LONE)
def test_lone_surrogates_are_not_unicode(text: str) -> None:
    assert not is_unicode(text)
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        check_unicode("user_message", text)


@pytest.mark.parametrize("text", ["", "ascii", "Olá 👋🏾 🇧🇷", "\U0010ffff", "e\u0301"])
def test_whole_characters_are_unicode(text: str) -> None:
    assert is_unicode(text) and check_unicode("x", text) == text


@pytest.mark.parametrize(
    "text",
    ["", " \n\t", "\u200b", "\u200c\u200d", "\ufeff", "\u00a0", "\u2060\u200e", "\u3164", "\u2800", "\ufe0f"],
)
def test_text_without_a_visible_character_shows_nothing(text: str) -> None:
    assert not shows_something(text * 3)


@pytest.mark.parametrize("text", ["a", "\u200b.", "😀", "\u00a0ç", "١", "\ue000"])
def test_one_visible_character_is_enough(text: str) -> None:
    assert shows_something(text)


@pytest.mark.parametrize("chat_id", ["abc\n", "a" * 128 + "\n", "abc\r", "", "-abc", "a" * 129, "a b"])
def test_chat_ids_must_match_in_full(chat_id: str) -> None:
    with pytest.raises(InvalidArgument):
        check_chat_id(chat_id)


def test_a_128_character_chat_id_is_fine() -> None:
    assert check_chat_id("a" * 128) == "a" * 128


@pytest.mark.parametrize("user_id", ["u\n", "\ud800", "a\x00", " ", "x" * 129])
def test_bad_user_ids(user_id: str) -> None:
    with pytest.raises(InvalidArgument):
        check_user_id(user_id)


@pytest.mark.parametrize("chat_id", ["wa:+5511999998888:1", "WA:+5511999998888:1", "Wa:x"])
def test_the_whatsapp_namespace_is_reserved(chat_id: str) -> None:
    assert is_reserved(chat_id) and check_chat_id(chat_id) == chat_id  # readable, by its owner
    with pytest.raises(InvalidArgument, match="reserved for WhatsApp"):
        check_new_chat_id(chat_id)


def test_other_ids_are_not_reserved() -> None:
    assert check_new_chat_id("wax:1") == "wax:1" and check_new_chat_id("w") == "w"


def test_system_prompts_models_and_stops_must_be_unicode() -> None:
    defaults = ChatParams(model="gpt-4o-mini", context_tokens=128_000, max_tokens=1024)
    with pytest.raises(InvalidArgument, match="system_prompt"):
        check_system_prompt("Seja breve \ud800")
    with pytest.raises(InvalidArgument, match="stop"):
        apply_overrides(defaults, ChatOverrides(stop=("FIM", "\udc80")))
    with pytest.raises(InvalidArgument, match="model"):
        apply_overrides(defaults, ChatOverrides(model="gpt-4\ud800"))


@pytest.mark.parametrize(
    ("key", "value"),
    [("INITIAL_CHAT_MESSAGE", "Olá \udcc3"), ("STOP", '["\\ud800"]'), ("MODEL", "gpt\udcff")],
)
def test_settings_with_lone_surrogates_stop_start_up_naming_the_key(key: str, value: str) -> None:
    # os.environ holds bytes that are not UTF-8 as lone surrogates (surrogateescape).
    with pytest.raises(SettingsError, match=key):
        Settings.from_env({key: value})


def test_a_dotenv_that_is_not_utf8_is_a_one_line_settings_error(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"INITIAL_CHAT_MESSAGE=Ol\xe1\n")  # Latin-1, as an old editor saves it
    with pytest.raises(SettingsError, match="is not UTF-8 text"):
        read_dotenv(str(env))
