"""DATABASE_URL parsing and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.url import DatabaseURL


def test_mysql_url_parts_are_decoded() -> None:
    u = DatabaseURL.parse("mysql://chat%40x:p%3Ass@db.local:3307/chats")
    assert (u.kind, u.user, u.password, u.host, u.port, u.database) == (
        "mysql",
        "chat@x",
        "p:ss",
        "db.local",
        3307,
        "chats",
    )
    assert DatabaseURL.parse("mysql+asyncmy://u@h/d").port == 3306


def test_sqlite_paths_resolve_to_absolute_files() -> None:
    assert DatabaseURL.parse("sqlite:///chat.db").path == str(Path("chat.db").resolve())
    assert DatabaseURL.parse("sqlite:////var/tmp/x.db").path == "/var/tmp/x.db"


@pytest.mark.parametrize(
    "url",
    ["postgres://h/d", "mysql://h", "mysql:///d", "sqlite://", "sqlite://host/x.db", "mysql://h:port/d"],
)
def test_unusable_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        DatabaseURL.parse(url)


def test_redacted_hides_the_password() -> None:
    u = DatabaseURL.parse("mysql://u:secret@h:3306/d")
    assert "secret" not in u.redacted() and "secret" not in repr(u)
    assert u.redacted() == "mysql://u:***@h:3306/d"


def test_to_url_round_trips() -> None:
    for url in ("mysql://a%40b:p%3A%2Fw@h:3307/d", "sqlite:////var/tmp/x.db"):
        u = DatabaseURL.parse(url)
        assert DatabaseURL.parse(u.to_url()) == u
