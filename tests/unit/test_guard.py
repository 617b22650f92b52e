"""Which Origin and Host headers the HTTP gateway answers (gateways/http/guard.py)."""

from __future__ import annotations

import pytest

from gateways.http.guard import host_allowed, own_origin
from gateways.settings import Settings

LOCAL = Settings.from_env({})
PUBLIC = Settings.from_env({"PUBLIC_URL": "https://chat.example.com/prefix"})
EXPOSED = Settings.from_env({"HOST": "0.0.0.0", "AUTH_TOKEN": "t"})


@pytest.mark.parametrize(
    ("origin", "host", "settings"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", LOCAL),
        ("http://localhost:8080", "localhost:8080", LOCAL),
        ("http://[::1]:8080", "[::1]:8080", LOCAL),
        ("https://chat.example.com", "127.0.0.1:8080", PUBLIC),  # PUBLIC_URL's origin
        ("https://chat.example.com", "chat.example.com", LOCAL),  # behind a TLS terminator
        ("http://localhost", "localhost:80", LOCAL),
    ],
)
def test_own_origins(origin: str, host: str, settings: Settings) -> None:
    assert own_origin(origin, host, settings)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://attacker.example", "127.0.0.1:8080"),
        ("null", "127.0.0.1:8080"),  # sandboxed frames, file: pages
        ("http://localhost:3000", "localhost:8080"),  # another local app
        ("http://127.0.0.1:8080", None),
        ("http://127.0.0.1:8080/path", "127.0.0.1:8080"),
        ("http://[::1", "[::1]:8080"),
        ("ftp://127.0.0.1:8080", "127.0.0.1:8080"),
    ],
)
def test_foreign_origins(origin: str, host: str | None) -> None:
    assert not own_origin(origin, host, PUBLIC)


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:1", "127.8.9.10", "chat.localhost"])
def test_loopback_names_are_answered_on_loopback(host: str) -> None:
    assert host_allowed(host, LOCAL)


@pytest.mark.parametrize("host", ["attacker.example:8080", "192.0.2.1", "[bad", "x:99999", ""])
def test_other_hosts_are_misdirected_on_loopback(host: str) -> None:
    assert not host_allowed(host, LOCAL)


def test_public_urls_host_is_answered_and_any_host_when_exposed() -> None:
    assert host_allowed("chat.example.com", PUBLIC) and not host_allowed("chat.example.com", LOCAL)
    assert host_allowed("attacker.example", EXPOSED)
