"""Token counting with tiktoken for a chat's model, offline, by OpenAI's cookbook chat formula."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import tiktoken
from tiktoken.model import encoding_name_for_model

from actors.window import REPLY_PRIMING_TOKENS

ENCODINGS_DIR = Path(__file__).with_name("encodings")
FALLBACK_ENCODING = "o200k_base"
TOKENS_PER_MESSAGE = 3  # <|start|>{role/name}\n{content}<|end|>\n
TOKENS_PER_NAME = 1

# tiktoken looks in its cache directory (files named by the sha1 of the download URL) before
# downloading; the vendored files are laid out that way. A user's own cache dir wins if set.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ENCODINGS_DIR))


def encoding_name(model: str) -> str:
    """tiktoken's encoding for the model; models it does not know are approximated by o200k_base."""
    try:
        return encoding_name_for_model(model)
    except KeyError:
        return FALLBACK_ENCODING


@lru_cache(maxsize=8)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


class Tokenizer:
    """Counts chat messages the way the Chat Completions API bills them."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.encoding = _encoding(encoding_name(model))

    def count_text(self, text: str) -> int:
        # disallowed_special=() counts "<|endoftext|>" typed by a user as text instead of raising.
        return len(self.encoding.encode(text, disallowed_special=()))

    def count_message(self, role: str, content: str, name: str | None = None) -> int:
        """Tokens one message adds to a prompt, its per-message overhead included."""
        tokens = TOKENS_PER_MESSAGE + self.count_text(role) + self.count_text(content)
        if name is not None:
            tokens += TOKENS_PER_NAME + self.count_text(name)
        return tokens

    def count_messages(self, messages: list[dict[str, str]]) -> int:
        """Tokens of a whole prompt, reply priming included (the cookbook's num_tokens_from_messages)."""
        return REPLY_PRIMING_TOKENS + sum(
            self.count_message(m["role"], m["content"], m.get("name")) for m in messages
        )


@lru_cache(maxsize=64)
def tokenizer_for(model: str) -> Tokenizer:
    return Tokenizer(model)
