"""WhatsApp rules, pure: splitting long answers, the chat id of a sender, commands and fixed replies."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

MAX_CHARS = 1600  # Twilio's limit for one WhatsApp message body
NEW_COMMANDS = frozenset({"/new", "novo", "/novo"})

NEW_CHAT_REPLY = "Started a new conversation. / Nova conversa iniciada."
MEDIA_REPLY = (
    "I can only read text for now: please send your question as a message. / "
    "Por enquanto só leio texto: envie sua pergunta como mensagem."
)
FAILED_REPLY = (
    "Sorry, I could not answer that right now; please try again in a moment. / "
    "Desculpe, não consegui responder agora; tente novamente em instantes."
)

# Preferred places to split, best first: a blank line, a line break, a sentence end, any space.
_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?…。！？][\"'”’»)\]]*\s"),
    re.compile(r"\s"),
)
_ZWJ = "\u200d"


def units(text: str) -> int:
    """Length as Twilio counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_message(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Ordered parts of at most `limit` units, split on paragraph, line, sentence or word boundaries."""
    rest = text.strip()
    parts: list[str] = []
    while units(rest) > limit:
        cut = _cut(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _cut(text: str, limit: int) -> int:
    """Where to end the next part: the best boundary in its second half, else a safe hard cut."""
    end = _fit(text, limit)
    window = text[:end]
    for pattern in _BREAKS:
        # A boundary too early would leave a tiny part; demand at least half the room be used.
        ends = [m.end() for m in pattern.finditer(window) if m.end() >= max(end // 2, 1)]
        if ends:
            return ends[-1]
    return _grapheme_start(text, end)


def _fit(text: str, limit: int) -> int:
    """The longest prefix (in code points) that fits in `limit` units."""
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return i
    return len(text)


def _extends(ch: str) -> bool:
    """Characters that belong to the character before them (never start a part)."""
    cp = ord(ch)
    return (
        ch == _ZWJ
        or unicodedata.combining(ch) != 0
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (emoji presentation)
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tones
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
        or cp == 0x20E3  # keycap
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _grapheme_start(text: str, index: int) -> int:
    """Move `index` back to the start of the user-perceived character it falls in."""
    i = index
    while 0 < i < len(text) and (_extends(text[i]) or text[i - 1] == _ZWJ):
        i -= 1
    if 0 < i < len(text) and _regional(text[i]):
        run = 0
        while i - run - 1 >= 0 and _regional(text[i - run - 1]):
            run += 1
        i -= run % 2  # flags are pairs of regional indicators: never cut a pair
    return i if i > 0 else index


# -- who is talking ----------------------------------------------------------------------------

# A WhatsApp chat id: `wa:<sender key>:<generation>`; chats made before sender keys were hashed
# have the number itself as their key (`wa:+5511999998888:1`) and are still continued.
_CHAT = re.compile(r"wa:[A-Za-z0-9+]{1,64}:([0-9]{1,9})")
_KEY_LABEL = b"chatservice whatsapp chat ids"


def id_key(explicit: str | None, auth_token: str) -> bytes:
    """The key of sender keys: WHATSAPP_ID_KEY, or one derived from the Twilio auth token."""
    if explicit:
        return explicit.encode()
    return hmac.new(auth_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def sender_key(sender: str, key: bytes) -> str:
    """An opaque, stable key for a sender (HMAC-SHA256 of the address): ids never hold the number."""
    address = sender.removeprefix("whatsapp:").strip()
    return hmac.new(key, address.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def chat_id_for(sender: str, generation: int, key: bytes) -> str:
    """The sender's chat of that generation; `/new` moves a sender to the next generation."""
    return f"wa:{sender_key(sender, key)}:{generation}"


def generation_of(chat_id: str) -> int | None:
    """The generation of a WhatsApp chat id, or None for any other chat id."""
    match = _CHAT.fullmatch(chat_id)
    return int(match.group(1)) if match else None


def is_new_command(body: str) -> bool:
    return body.strip().lower() in NEW_COMMANDS
