"""Text from clients, pure: it must be valid Unicode, and a message must show something."""

from __future__ import annotations

import unicodedata

from store.errors import InvalidArgument

# Characters that draw nothing on their own: controls, format characters (zero-width space, joiners,
# BOM, bidi marks), separators, and combining marks or variation selectors with no base.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that render blank: Hangul fillers, the braille blank.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_unicode(value: str) -> bool:
    """False when `value` holds a lone surrogate (half of a UTF-16 pair), which no store can keep."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_unicode(name: str, value: str) -> str:
    if not is_unicode(value):
        raise InvalidArgument(
            f"{name} is not valid Unicode: it holds a lone surrogate (half of a character, as when "
            "an emoji is cut in two); send whole characters"
        )
    return value


def is_visible(ch: str) -> bool:
    return (
        not ch.isspace()
        and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
        and ch not in _BLANK_CHARACTERS
    )


def shows_something(text: str) -> bool:
    """True if any character of `text` draws something (stops at the first that does)."""
    return any(is_visible(ch) for ch in text)
