"""Parsers of setting text: each turns a key's text into a value, or a one-line SettingsError naming it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gateways.service.params import MAX_STOP_SEQUENCES
from store.url import DatabaseURL

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
Warn = Callable[[str], None]
Parse = Callable[[str, str, Warn], Any]  # (key, text, warn) -> value; raises SettingsError


class SettingsError(ValueError):
    """A bad setting; str() is one line that names the key."""


def text(key: str, value: str, warn: Warn) -> str:
    return value


def number(kind: type[int] | type[float], lo: float, hi: float) -> Parse:
    def parse(key: str, text: str, warn: Warn) -> Any:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise SettingsError(f"{key}={text!r}: must be {noun}") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{key}={text!r}: must be between {lo} and {hi}")
        return value

    return parse


def flag(key: str, text: str, warn: Warn) -> bool:
    value = text.lower()
    if value not in _TRUE + _FALSE:
        raise SettingsError(f"{key}={value!r}: must be 1 or 0 (true/false, yes/no, on/off)")
    return value in _TRUE


def choice(*choices: str, upper: bool = False, listed: str = "") -> Parse:
    def parse(key: str, text: str, warn: Warn) -> str:
        value = text.upper() if upper else text.lower()
        if value not in choices:
            raise SettingsError(f"{key}={value!r}: must be {listed or ' or '.join(choices)}")
        return value

    return parse


def http_url(key: str, url: str, warn: Warn) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            f"{key}={url!r}: must be an http(s) URL with no query, e.g. https://chat.example.com"
        )
    return url.rstrip("/")


def database_url(key: str, url: str, warn: Warn) -> DatabaseURL:
    try:
        return DatabaseURL.parse(url)
    except ValueError as exc:
        raise SettingsError(f"{key}: {exc}") from None


def template_sid(key: str, sid: str, warn: Warn) -> str:
    if not re.fullmatch(r"HX[0-9a-fA-F]{32}", sid):
        raise SettingsError(f"{key}={sid!r}: must be a Content SID, HX and 32 hex digits")
    return sid


def stop(key: str, text: str, warn: Warn) -> tuple[str, ...]:
    try:
        parsed = json.loads(text) if text.startswith("[") else None
    except json.JSONDecodeError:
        parsed = None
    if parsed is None:
        stops = tuple(s for s in text.split(",") if s)
        if text.startswith("["):
            # The original service's own .env.example has such a value; it split STOP on commas
            # (viper), so it sent it as a literal stop sequence. Do the same, and say so.
            warn(
                f"STOP={text} is not a JSON list: taken literally and split on commas, as the "
                f"original service did ({len(stops)} stop sequence(s)); "
                'write a JSON list such as ["END"] to mean a list'
            )
    elif isinstance(parsed, list) and all(isinstance(s, str) for s in parsed):
        stops = tuple(s for s in parsed if s)
    else:
        raise SettingsError("STOP: must be a JSON list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise SettingsError(f"STOP: {len(stops)} sequences given, at most {MAX_STOP_SEQUENCES} allowed")
    return stops
