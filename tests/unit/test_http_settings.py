"""The HTTP gateway's settings: public URL and Twilio, with one-line errors naming the key."""

from __future__ import annotations

import pytest

from gateways.settings import Settings, SettingsError


def test_twilio_is_off_by_default_and_the_budget_is_ten_seconds() -> None:
    s = Settings.from_env({})
    assert (s.public_url, s.twilio_auth_token, s.twilio_account_sid) == (None, None, None)
    assert s.twilio_reply_budget_seconds == 10.0 and s.twilio_api_base_url == "https://api.twilio.com"


def test_twilio_settings_are_read_and_the_token_stays_out_of_repr() -> None:
    s = Settings.from_env(
        {
            "PUBLIC_URL": "https://chat.example.com/prefix/",
            "TWILIO_AUTH_TOKEN": "tw-secret-123",
            "TWILIO_ACCOUNT_SID": "AC123",
            "TWILIO_REPLY_BUDGET_SECONDS": "2.5",
            "TWILIO_API_BASE_URL": "http://127.0.0.1:9999",
        }
    )
    assert s.public_url == "https://chat.example.com/prefix"
    assert (s.twilio_auth_token, s.twilio_account_sid, s.twilio_reply_budget_seconds) == (
        "tw-secret-123",
        "AC123",
        2.5,
    )
    assert s.twilio_api_base_url == "http://127.0.0.1:9999"
    assert "tw-secret-123" not in repr(s)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"PUBLIC_URL": "chat.example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "ftp://chat.example.com"}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "https://chat.example.com/?a=b"}, "PUBLIC_URL"),
        ({"TWILIO_REPLY_BUDGET_SECONDS": "15"}, "TWILIO_REPLY_BUDGET_SECONDS"),
        ({"TWILIO_REPLY_BUDGET_SECONDS": "soon"}, "TWILIO_REPLY_BUDGET_SECONDS"),
        ({"TWILIO_API_BASE_URL": "api.twilio.com"}, "TWILIO_API_BASE_URL"),
    ],
)
def test_a_bad_value_names_its_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value).startswith(key) and "\n" not in str(info.value)
