"""The settings table: every environment key declared once (parser, default, range or choices, help)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.names import NAMESPACE
from gateways.service.params import RANGES
from gateways.settings.parse import (
    Parse,
    choice,
    database_url,
    flag,
    http_url,
    number,
    stop,
    template_sid,
    text,
)


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment key: how its text is parsed, its value when unset, and its help."""

    key: str
    help: str
    parse: Parse
    default: Any = None  # the value when the key is unset (or blank)
    unset: str = "none"  # what unset means, shown when the default is None or ""
    attr: str = ""  # the Settings attribute it fills, when not key.lower()
    part: str | None = None  # or the composite Settings attribute it is read into, with other keys
    raw: bool = False  # taken as given, blanks and spaces included, not stripped

    @property
    def field(self) -> str | None:
        """The Settings attribute this key alone fills (None: it is part of a composite)."""
        return None if self.part else self.attr or self.key.lower()

    @property
    def has_value(self) -> bool:
        """Whether unset means a value (else it means what `unset` says)."""
        return self.default is not None and self.default not in ("", ())

    @property
    def shown(self) -> str:
        """The default as README's table states it (`--help` puts parentheses around `unset`)."""
        value = self.default
        if not self.has_value:
            return self.unset
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)


def _range(name: str) -> Parse:
    return number(float, *RANGES[name])


_PORT = number(int, 0, 65535)
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
V = EnvVar

# To add a setting: one row here, its attribute (named key.lower(), or attr=) typed on Settings in
# values.py, and a row in README's settings table; tests/unit/test_settings_table.py checks all three.
ENV_VARS: tuple[EnvVar, ...] = (
    V("HOST", "interface to bind; anything but loopback requires AUTH_TOKEN", text, "127.0.0.1"),
    V("WEB_SERVER_PORT", "HTTP port (JSON API, SSE, Twilio webhook)", _PORT, 8080, attr="web_port"),
    V("GRPC_SERVER_PORT", "gRPC port", _PORT, 50051, attr="grpc_port"),
    V(
        "SHUTDOWN_GRACE_SECONDS",
        "at SIGTERM, running HTTP and gRPC turns get this long to finish",
        number(float, 0.0, 3600.0),
        10.0,
        part="shutdown_grace_seconds",
    ),
    # The older name, from when only gRPC streams were drained: no default of its own.
    V(
        "GRPC_GRACE_SECONDS",
        "older name of SHUTDOWN_GRACE_SECONDS, still accepted",
        number(float, 0.0, 3600.0),
        part="shutdown_grace_seconds",
    ),
    V("AUTH_TOKEN", "token clients send as 'Authorization: <token>' or 'Bearer <token>'", text),
    V("OPENAI_API_KEY", "LLM API key; unset = the built-in offline responder", text),
    V("OPENAI_BASE_URL", "any OpenAI-compatible server, e.g. http://localhost:8000/v1", text, unset="OpenAI"),
    V("MODEL", "model for new chats", text, "gpt-4o-mini", part="default_params"),
    V(
        "MODEL_MAX_TOKENS",
        "context window in tokens; unset for an unknown model = read from the LLM server at start-up",
        number(int, 16, 100_000_000),
        unset="known models, else the server's",
    ),
    V(
        "TOKENIZER",
        "auto, tiktoken or server: how message tokens are counted",
        choice("auto", "tiktoken", "server"),
        "auto",
    ),
    # Unset, the reserve is this default or half the context window, whichever is smaller (values.py).
    V(
        "MAX_TOKENS",
        "tokens reserved for each answer (sent as max_tokens)",
        number(int, 1, 100_000_000),
        1024,
        part="default_params",
    ),
    V(
        "TEMPERATURE",
        "sampling temperature, 0-2",
        _range("temperature"),
        unset="model default",
        part="default_params",
    ),
    V("TOP_P", "nucleus sampling, 0-1", _range("top_p"), unset="model default", part="default_params"),
    V("N", "choices requested; only the first is used", number(int, 1, 128), 1, part="default_params"),
    V("STOP", "stop sequences: comma-separated, or a JSON list; at most 4", stop, (), part="default_params"),
    V(
        "PRESENCE_PENALTY",
        "-2 to 2",
        _range("presence_penalty"),
        unset="model default",
        part="default_params",
    ),
    V(
        "FREQUENCY_PENALTY",
        "-2 to 2",
        _range("frequency_penalty"),
        unset="model default",
        part="default_params",
    ),
    V("INITIAL_CHAT_MESSAGE", "system prompt of new chats", text, "You are a helpful assistant.", raw=True),
    V(
        "DATABASE_URL",
        "mysql://user:pass@host:3306/db or sqlite:///file",
        database_url,
        "sqlite:///chatservice.db",
        part="database",
    ),
    V(
        "DB_HOST",
        "MySQL host (with DB_PORT, DB_USER, DB_PASSWORD, DB_NAME) if no DATABASE_URL",
        text,
        part="database",
    ),
    V("DB_PORT", "MySQL port", number(int, 1, 65535), 3306, part="database"),
    V("DB_USER", "MySQL user", text, "root", part="database"),
    V("DB_PASSWORD", "MySQL password", text, "", unset="empty", raw=True, part="database"),
    V("DB_NAME", "MySQL database", text, "chatservice", part="database"),
    V("DB_POOL_SIZE", "database connections of the gateway process", number(int, 1, 1000), 4),
    V("RAY_ADDRESS", "join this Ray cluster instead", text, unset="start a local Ray"),
    V("RAY_NAMESPACE", "Ray namespace of this deployment's actors", text, NAMESPACE),
    V(
        "CHAT_IDLE_SECONDS",
        "an idle conversation's actor exits after this long",
        number(float, 1.0, 86400.0 * 7),
        300.0,
    ),
    V(
        "CONVERSATION_PLACEMENT",
        "actor: each live chat its own Ray actor; hosted: many chats per host actor",
        choice("actor", "hosted"),
        "actor",
    ),
    V("HOSTS_PER_NODE", "host actors per Ray node (hosted placement)", number(int, 1, 256), 2),
    V(
        "MAX_LIVE_CHATS",
        "live chats per Ray node; least recently used idle ones passivate beyond",
        number(int, 1, 10_000_000),
        unset="half the node's memory / 64 MiB (actor) or / 1 MiB (hosted)",
    ),
    V(
        "ACTIVATION_WAIT_SECONDS",
        "with every live chat busy, a new one waits this long for room; a chat whose actor died "
        "is re-activated for this long before the client gets an error",
        number(float, 0.0, 600.0),
        10.0,
    ),
    V(
        "TURN_TIMEOUT_SECONDS",
        "a turn whose gateway vanished frees its chat after this long (a streaming turn renews it)",
        number(float, 1.0, 86400.0),
        300.0,
    ),
    V(
        "STREAM_FLUSH_MS",
        "an answer's deltas reach a client at most once per this many ms, the first at once (0: no wait)",
        number(int, 0, 1000),
        25,
    ),
    V(
        "STREAM_FLUSH_TOKENS",
        "or sooner, once this many deltas wait",
        number(int, 1, 100_000),
        32,
    ),
    V(
        "CHAT_TURNS_PER_MINUTE",
        "turns one chat may begin per minute (0 = no limit)",
        number(int, 0, 1_000_000),
        30,
    ),
    V(
        "USER_TURNS_PER_MINUTE",
        "turns one user may begin per minute, per gateway (0 = no limit)",
        number(int, 0, 1_000_000),
        120,
    ),
    V(
        "LLM_TIMEOUT_SECONDS",
        "an LLM request (a turn, a title, a transcription) that sends nothing for this long fails",
        number(float, 1.0, 3600.0),
        60.0,
    ),
    V("MAX_MESSAGE_CHARS", "longest user message accepted", number(int, 1, 10_000_000), 100_000),
    V("MAX_BODY_BYTES", "largest HTTP request body accepted", number(int, 1024, 1 << 30), 1 << 20),
    V(
        "LOG_LEVEL",
        "DEBUG, INFO, WARNING or ERROR",
        choice(*_LEVELS, upper=True, listed="DEBUG, INFO, WARNING or ERROR"),
        "INFO",
    ),
    V("LOG_FORMAT", "text, or json (one JSON object a line)", choice("text", "json"), "text"),
    V(
        "AUTO_TITLE",
        "1 = after a chat's first exchange the LLM is asked for a short title (0: its first words)",
        flag,
        True,
    ),
    V("LOG_CONTENT", "1 = log user messages and answers at INFO (never logged otherwise)", flag, False),
    V(
        "METRICS_EXPORT_PORT",
        "Prometheus port of the local Ray serve starts",
        number(int, 1, 65535),
        unset="any free port",
    ),
    V("RAY_DASHBOARD", "0 = the local Ray serve starts has no dashboard (starts faster)", flag, True),
    V(
        "PUBLIC_URL",
        "the service's public base URL, e.g. https://chat.example.com",
        http_url,
        unset="the URL as requested",
    ),
    V("TWILIO_AUTH_TOKEN", "verifies X-Twilio-Signature; unset = no WhatsApp webhook", text),
    V(
        "TWILIO_ACCOUNT_SID",
        "fetches WhatsApp media; sends late answers and bursts via the REST API",
        text,
    ),
    V(
        "TWILIO_REPLY_BUDGET_SECONDS",
        "answer a webhook inline if the turn ends within this",
        number(float, 0.0, 14.0),
        10.0,
    ),
    V("TWILIO_API_BASE_URL", "where the Twilio REST client sends", http_url, "https://api.twilio.com"),
    V(
        "EVICT_TO",
        "a full window is evicted down to this share of it, 0.5-1 (1 = only what each message needs)",
        number(float, 0.5, 1.0),
        0.75,
    ),
    V(
        "WHATSAPP_ID_KEY",
        "key of the hash that names WhatsApp chats (no phone number in ids, actor names or logs)",
        text,
        unset="derived from TWILIO_AUTH_TOKEN",
    ),
    V(
        "MAX_CONNECTIONS",
        "open connections per port (HTTP, gRPC); beyond it the oldest idle HTTP one is closed",
        number(int, 8, 1_000_000),
        unset="a quarter of the open-file limit, at most 1000",
    ),
    V(
        "READ_TIMEOUT_SECONDS",
        "an HTTP request's head, then its body, must each arrive within this long (408/closed beyond)",
        number(float, 1.0, 3600.0),
        15.0,
    ),
    V(
        "TRANSCRIBE_MODEL",
        "model of WhatsApp voice-note transcriptions (/audio/transcriptions)",
        text,
        "whisper-1",
    ),
    V(
        "VOICE_MAX_SECONDS",
        "longest WhatsApp voice note transcribed (read from its OGG/Opus header)",
        number(float, 1.0, 7200.0),
        300.0,
    ),
    V(
        "AUDIO_MAX_BYTES",
        "largest WhatsApp voice note or audio fetched (at most 25 MiB)",
        number(int, 1024, 25 << 20),
        16 << 20,
    ),
    V(
        "IMAGE_MAX_BYTES",
        "largest WhatsApp image fetched and stored",
        number(int, 1024, (16 << 20) - 1),
        5 << 20,
    ),
    V(
        "VISION",
        "auto (the known-model table), on or off: whether the model is sent images",
        choice("auto", "on", "off"),
        "auto",
    ),
    V(
        "IMAGE_DETAIL",
        "high or low: the detail images are sent and counted at",
        choice("high", "low"),
        "high",
    ),
    V(
        "IMAGE_TOKENS",
        "tokens counted per image for models without a known image rule",
        number(int, 0, 1_000_000),
        1000,
    ),
    V(
        "MEDIA_TIMEOUT_SECONDS",
        "a request to Twilio (a media fetch with its redirect, a message sent) must end within this",
        number(float, 1.0, 300.0),
        15.0,
    ),
    V(
        "WHATSAPP_DEBOUNCE_MS",
        "a sender's WhatsApp messages this close together are one turn via REST (0 = each alone, inline)",
        number(int, 0, 60_000),
        1500,
    ),
    V(
        "WHATSAPP_TEMPLATE_SID",
        "approved template (HX...) sent with the answer's opening as {{1}} after the 24-hour window; "
        "unset = such answers are withheld",
        template_sid,
    ),
)
BY_KEY: dict[str, EnvVar] = {v.key: v for v in ENV_VARS}
