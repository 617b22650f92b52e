"""The one Settings object, built from the environment (the original Go service's .env keys honoured)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import urlsplit

from gateways.models import context_window
from gateways.params import MAX_STOP_SEQUENCES, RANGES
from gateways.text import is_unicode
from store.records import ChatParams
from store.url import DatabaseURL

T = TypeVar("T")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A bad setting; str() is one line that names the key."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    key: str
    default: str
    help: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("HOST", "127.0.0.1", "interface to bind; anything but loopback requires AUTH_TOKEN"),
    EnvVar("WEB_SERVER_PORT", "8080", "HTTP port (JSON API, SSE, Twilio webhook)"),
    EnvVar("GRPC_SERVER_PORT", "50051", "gRPC port"),
    EnvVar("SHUTDOWN_GRACE_SECONDS", "10", "at SIGTERM, running HTTP and gRPC turns get this long to finish"),
    EnvVar("GRPC_GRACE_SECONDS", "(none)", "older name of SHUTDOWN_GRACE_SECONDS, still accepted"),
    EnvVar("AUTH_TOKEN", "(none)", "token clients send as 'Authorization: <token>' or 'Bearer <token>'"),
    EnvVar("OPENAI_API_KEY", "(none)", "LLM API key; unset = the built-in offline responder"),
    EnvVar("OPENAI_BASE_URL", "(OpenAI)", "any OpenAI-compatible server, e.g. http://localhost:8000/v1"),
    EnvVar("MODEL", "gpt-4o-mini", "model for new chats"),
    EnvVar(
        "MODEL_MAX_TOKENS",
        "(known models, else the server's)",
        "context window in tokens; unset for an unknown model = read from the LLM server at start-up",
    ),
    EnvVar("TOKENIZER", "auto", "auto, tiktoken or server: how message tokens are counted"),
    EnvVar("MAX_TOKENS", "1024", "tokens reserved for each answer (sent as max_tokens)"),
    EnvVar("TEMPERATURE", "(model default)", "sampling temperature, 0-2"),
    EnvVar("TOP_P", "(model default)", "nucleus sampling, 0-1"),
    EnvVar("N", "1", "choices requested; only the first is used"),
    EnvVar("STOP", "(none)", "stop sequences: comma-separated, or a JSON list; at most 4"),
    EnvVar("PRESENCE_PENALTY", "(model default)", "-2 to 2"),
    EnvVar("FREQUENCY_PENALTY", "(model default)", "-2 to 2"),
    EnvVar("INITIAL_CHAT_MESSAGE", "You are a helpful assistant.", "system prompt of new chats"),
    EnvVar("DATABASE_URL", "sqlite:///chatservice.db", "mysql://user:pass@host:3306/db or sqlite:///file"),
    EnvVar(
        "DB_HOST", "(none)", "MySQL host (with DB_PORT, DB_USER, DB_PASSWORD, DB_NAME) if no DATABASE_URL"
    ),
    EnvVar("DB_PORT", "3306", "MySQL port"),
    EnvVar("DB_USER", "root", "MySQL user"),
    EnvVar("DB_PASSWORD", "(empty)", "MySQL password"),
    EnvVar("DB_NAME", "chatservice", "MySQL database"),
    EnvVar("DB_POOL_SIZE", "4", "database connections of the gateway process"),
    EnvVar("RAY_ADDRESS", "(start a local Ray)", "join this Ray cluster instead"),
    EnvVar("RAY_NAMESPACE", "chatservice", "Ray namespace of this deployment's actors"),
    EnvVar("CHAT_IDLE_SECONDS", "300", "an idle conversation's actor exits after this long"),
    EnvVar(
        "MAX_LIVE_CHATS",
        "(half the node's memory / 64 MiB)",
        "live conversation actors per Ray node; least recently used idle ones passivate beyond",
    ),
    EnvVar(
        "ACTIVATION_WAIT_SECONDS",
        "10",
        "with every live chat busy, a new one waits this long for room; a chat whose actor died "
        "is re-activated for this long before the client gets an error",
    ),
    EnvVar(
        "TURN_TIMEOUT_SECONDS",
        "300",
        "a turn whose gateway vanished frees its chat after this long (a streaming turn renews it)",
    ),
    EnvVar("CHAT_TURNS_PER_MINUTE", "30", "turns one chat may begin per minute (0 = no limit)"),
    EnvVar("USER_TURNS_PER_MINUTE", "120", "turns one user may begin per minute, per gateway (0 = no limit)"),
    EnvVar("LLM_TIMEOUT_SECONDS", "60", "an LLM request that sends nothing for this long fails"),
    EnvVar("MAX_MESSAGE_CHARS", "100000", "longest user message accepted"),
    EnvVar("MAX_BODY_BYTES", "1048576", "largest HTTP request body accepted"),
    EnvVar("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    EnvVar("LOG_FORMAT", "text", "text, or json (one JSON object a line)"),
    EnvVar("AUTO_TITLE", "1", "1 = after a chat's first exchange the LLM is asked for a short title"),
    EnvVar("LOG_CONTENT", "0", "1 = log user messages and answers at INFO (never logged otherwise)"),
    EnvVar("METRICS_EXPORT_PORT", "(any free port)", "Prometheus port of the local Ray serve starts"),
    EnvVar("RAY_DASHBOARD", "1", "0 = the local Ray serve starts has no dashboard (starts faster)"),
    EnvVar("PUBLIC_URL", "(as requested)", "the service's public base URL, e.g. https://chat.example.com"),
    EnvVar("TWILIO_AUTH_TOKEN", "(none)", "verifies X-Twilio-Signature; unset = no WhatsApp webhook"),
    EnvVar("TWILIO_ACCOUNT_SID", "(none)", "sends answers that miss the reply budget via the REST API"),
    EnvVar("TWILIO_REPLY_BUDGET_SECONDS", "10", "answer a webhook inline if the turn ends within this"),
    EnvVar("TWILIO_API_BASE_URL", "https://api.twilio.com", "where the Twilio REST client sends"),
    EnvVar(
        "EVICT_TO",
        "0.75",
        "a full window is evicted down to this share of it, 0.5-1 (1 = only what each message needs)",
    ),
    EnvVar(
        "WHATSAPP_ID_KEY",
        "(from TWILIO_AUTH_TOKEN)",
        "key of the hash that names WhatsApp chats (no phone number in ids, actor names or logs)",
    ),
    EnvVar(
        "MAX_CONNECTIONS",
        "(a quarter of the open-file limit, at most 1000)",
        "open connections per port (HTTP, gRPC); beyond it the oldest idle HTTP one is closed",
    ),
    EnvVar(
        "READ_TIMEOUT_SECONDS",
        "15",
        "an HTTP request's head, then its body, must each arrive within this long (408/closed beyond)",
    ),
    EnvVar(
        "TRANSCRIBE_MODEL", "whisper-1", "model of WhatsApp voice-note transcriptions (/audio/transcriptions)"
    ),
    EnvVar(
        "VOICE_MAX_SECONDS", "300", "longest WhatsApp voice note transcribed (read from its OGG/Opus header)"
    ),
    EnvVar("AUDIO_MAX_BYTES", "16777216", "largest WhatsApp voice note or audio fetched (at most 25 MiB)"),
    EnvVar("IMAGE_MAX_BYTES", "5242880", "largest WhatsApp image fetched and stored"),
    EnvVar("VISION", "auto", "auto (the known-model table), on or off: whether the model is sent images"),
    EnvVar("IMAGE_DETAIL", "high", "high or low: the detail images are sent and counted at"),
    EnvVar("IMAGE_TOKENS", "1000", "tokens counted per image for models without a known image rule"),
    EnvVar(
        "MEDIA_TIMEOUT_SECONDS", "15", "a WhatsApp media fetch (with Twilio's redirect) must end within this"
    ),
    EnvVar(
        "WHATSAPP_DEBOUNCE_MS",
        "1500",
        "a sender's WhatsApp messages this close together are answered as one turn (0 = each alone)",
    ),
    EnvVar(
        "WHATSAPP_TEMPLATE_SID",
        "(none)",
        "approved template (HX...) sent with the answer's opening as {{1}} after the 24-hour window; "
        "unset = such answers are withheld",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    web_port: int
    grpc_port: int
    auth_token: str | None = field(repr=False)
    openai_api_key: str | None = field(repr=False)
    openai_base_url: str | None
    default_params: ChatParams
    initial_chat_message: str
    database: DatabaseURL
    db_pool_size: int
    ray_address: str | None
    chat_idle_seconds: float
    turn_timeout_seconds: float
    max_message_chars: int
    max_body_bytes: int
    log_level: str
    shutdown_grace_seconds: float = 10.0
    log_format: str = "text"
    log_content: bool = False
    auto_title: bool = True
    metrics_export_port: int | None = None
    public_url: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_reply_budget_seconds: float = 10.0
    twilio_api_base_url: str = "https://api.twilio.com"
    max_live_chats: int | None = None  # None: sized from the node's memory (live_chats_cap)
    activation_wait_seconds: float = 10.0
    chat_turns_per_minute: int = 30
    user_turns_per_minute: int = 120
    llm_timeout_seconds: float = 60.0
    ray_namespace: str = "chatservice"
    evict_to: float = 0.75
    whatsapp_id_key: str | None = field(default=None, repr=False)
    max_connections: int | None = None  # None: sized from the open-file limit (connection_cap)
    read_timeout_seconds: float = 15.0
    tokenizer: str = "auto"
    model_max_tokens: int | None = None  # MODEL_MAX_TOKENS as given (None: the table's, or discovered)
    max_tokens_setting: int | None = None  # MAX_TOKENS as given
    transcribe_model: str = "whisper-1"
    voice_max_seconds: float = 300.0
    audio_max_bytes: int = 16 << 20
    image_max_bytes: int = 5 << 20
    vision: str = "auto"
    image_detail: str = "high"
    image_tokens: int = 1000
    media_timeout_seconds: float = 15.0
    whatsapp_debounce_ms: int = 1500
    whatsapp_template_sid: str | None = None
    ray_dashboard: bool = True
    # Values accepted with a caveat (e.g. the original service's STOP), logged at start-up.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raise SettingsError naming the first bad key."""
        r = _Reader(os.environ if env is None else env)
        settings = cls(
            host=r.text("HOST") or "127.0.0.1",
            web_port=r.number("WEB_SERVER_PORT", int, 8080, 0, 65535),
            grpc_port=r.number("GRPC_SERVER_PORT", int, 50051, 0, 65535),
            auth_token=r.text("AUTH_TOKEN"),
            openai_api_key=r.text("OPENAI_API_KEY"),
            openai_base_url=r.text("OPENAI_BASE_URL"),
            default_params=_chat_params(r, offline=r.text("OPENAI_API_KEY") is None),
            initial_chat_message=r.raw("INITIAL_CHAT_MESSAGE", "You are a helpful assistant."),
            database=_database(r),
            db_pool_size=r.number("DB_POOL_SIZE", int, 4, 1, 1000),
            ray_address=r.text("RAY_ADDRESS"),
            chat_idle_seconds=r.number("CHAT_IDLE_SECONDS", float, 300.0, 1.0, 86400.0 * 7),
            turn_timeout_seconds=r.number("TURN_TIMEOUT_SECONDS", float, 300.0, 1.0, 86400.0),
            max_message_chars=r.number("MAX_MESSAGE_CHARS", int, 100_000, 1, 10_000_000),
            max_body_bytes=r.number("MAX_BODY_BYTES", int, 1 << 20, 1024, 1 << 30),
            log_level=_log_level(r),
            shutdown_grace_seconds=_grace(r),
            log_format=_choice(r, "LOG_FORMAT", ("text", "json")),
            log_content=r.flag("LOG_CONTENT"),
            auto_title=r.flag("AUTO_TITLE", default=True),
            metrics_export_port=r.optional("METRICS_EXPORT_PORT", int, 1, 65535),
            public_url=_http_url(r, "PUBLIC_URL"),
            twilio_auth_token=r.text("TWILIO_AUTH_TOKEN"),
            twilio_account_sid=r.text("TWILIO_ACCOUNT_SID"),
            twilio_reply_budget_seconds=r.number("TWILIO_REPLY_BUDGET_SECONDS", float, 10.0, 0.0, 14.0),
            twilio_api_base_url=_http_url(r, "TWILIO_API_BASE_URL") or "https://api.twilio.com",
            max_live_chats=r.optional("MAX_LIVE_CHATS", int, 1, 1_000_000),
            activation_wait_seconds=r.number("ACTIVATION_WAIT_SECONDS", float, 10.0, 0.0, 600.0),
            chat_turns_per_minute=r.number("CHAT_TURNS_PER_MINUTE", int, 30, 0, 1_000_000),
            user_turns_per_minute=r.number("USER_TURNS_PER_MINUTE", int, 120, 0, 1_000_000),
            llm_timeout_seconds=r.number("LLM_TIMEOUT_SECONDS", float, 60.0, 1.0, 3600.0),
            ray_namespace=r.text("RAY_NAMESPACE") or "chatservice",
            evict_to=r.number("EVICT_TO", float, 0.75, 0.5, 1.0),
            whatsapp_id_key=r.text("WHATSAPP_ID_KEY"),
            max_connections=r.optional("MAX_CONNECTIONS", int, 8, 1_000_000),
            read_timeout_seconds=r.number("READ_TIMEOUT_SECONDS", float, 15.0, 1.0, 3600.0),
            tokenizer=_choice(r, "TOKENIZER", ("auto", "tiktoken", "server")),
            model_max_tokens=r.optional("MODEL_MAX_TOKENS", int, 16, 100_000_000),
            max_tokens_setting=r.optional("MAX_TOKENS", int, 1, 100_000_000),
            transcribe_model=r.text("TRANSCRIBE_MODEL") or "whisper-1",
            voice_max_seconds=r.number("VOICE_MAX_SECONDS", float, 300.0, 1.0, 7200.0),
            audio_max_bytes=r.number("AUDIO_MAX_BYTES", int, 16 << 20, 1024, 25 << 20),
            image_max_bytes=r.number("IMAGE_MAX_BYTES", int, 5 << 20, 1024, (16 << 20) - 1),
            vision=_choice(r, "VISION", ("auto", "on", "off")),
            image_detail=_choice(r, "IMAGE_DETAIL", ("high", "low")),
            image_tokens=r.number("IMAGE_TOKENS", int, 1000, 0, 1_000_000),
            media_timeout_seconds=r.number("MEDIA_TIMEOUT_SECONDS", float, 15.0, 1.0, 300.0),
            whatsapp_debounce_ms=r.number("WHATSAPP_DEBOUNCE_MS", int, 1500, 0, 60_000),
            whatsapp_template_sid=_template_sid(r),
            ray_dashboard=r.flag("RAY_DASHBOARD", default=True),
            warnings=tuple(r.warnings),
        )
        settings.check_exposure()
        settings.check_text()
        return settings

    def check_exposure(self) -> None:
        if self.auth_token is None and not is_loopback(self.host):
            raise SettingsError(
                f"HOST={self.host}: refusing to listen beyond loopback without AUTH_TOKEN; "
                "set AUTH_TOKEN or bind 127.0.0.1"
            )

    def check_text(self) -> None:
        """Text settings a client would be refused for (lone surrogates) stop start-up instead."""
        for key, value in (("INITIAL_CHAT_MESSAGE", self.initial_chat_message), *_stops(self)):
            if not is_unicode(value):
                raise SettingsError(f"{key}: holds a lone surrogate (not valid Unicode); fix the text")

    @property
    def connection_cap(self) -> int:
        """MAX_CONNECTIONS, or a quarter of the open-file limit (the process needs fds for more)."""
        if self.max_connections is not None:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if soft != resource.RLIM_INFINITY else 4096
        return max(8, min(1000, limit // 4))

    @property
    def offline(self) -> bool:
        return self.openai_api_key is None

    @property
    def context_known(self) -> bool:
        """False until serve has read an unknown model's context size from its server."""
        return self.default_params.context_tokens > 0

    def with_context(self, window: int) -> Settings:
        """These settings with the default model's context size now known (SettingsError if MAX_TOKENS
        does not fit it)."""
        params = self.default_params
        max_tokens = _max_tokens(self.max_tokens_setting, window)
        return replace(self, default_params=replace(params, context_tokens=window, max_tokens=max_tokens))

    @property
    def live_chats_cap(self) -> int:
        """MAX_LIVE_CHATS, or half this node's memory at ~64 MiB a conversation actor (at least 8)."""
        if self.max_live_chats is not None:
            return self.max_live_chats
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return max(8, memory // 2 // (64 << 20))


def _stops(settings: Settings) -> list[tuple[str, str]]:
    return [("STOP", stop) for stop in settings.default_params.stop]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.warnings: list[str] = []

    def raw(self, key: str, default: str) -> str:
        value = self._env.get(key, default)
        if not is_unicode(value):  # bytes that are not UTF-8 reach os.environ as lone surrogates
            raise SettingsError(f"{key}: is not valid UTF-8 text")
        return value

    def text(self, key: str) -> str | None:
        value = self.raw(key, "").strip()
        return value or None

    def number(self, key: str, kind: Callable[[str], T], default: T, lo: T, hi: T) -> T:
        value = self.optional(key, kind, lo, hi)
        return default if value is None else value

    def flag(self, key: str, default: bool = False) -> bool:
        text = (self.text(key) or ("1" if default else "0")).lower()
        if text not in _TRUE + _FALSE:
            raise SettingsError(f"{key}={text!r}: must be 1 or 0 (true/false, yes/no, on/off)")
        return text in _TRUE

    def optional(self, key: str, kind: Callable[[str], T], lo: T, hi: T) -> T | None:
        text = self.text(key)
        if text is None:
            return None
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise SettingsError(f"{key}={text!r}: must be {noun}") from None
        if not lo <= value <= hi:  # type: ignore[operator]
            raise SettingsError(f"{key}={text!r}: must be between {lo} and {hi}")
        return value


def _chat_params(r: _Reader, offline: bool) -> ChatParams:
    model = r.text("MODEL") or "gpt-4o-mini"
    window = r.optional("MODEL_MAX_TOKENS", int, 16, 100_000_000) or context_window(model)
    if window is None and offline:
        raise SettingsError(f"MODEL_MAX_TOKENS: unset, and model {model!r} is unknown; set it")
    max_tokens = r.optional("MAX_TOKENS", int, 1, 100_000_000)
    return ChatParams(
        model=model,
        # 0 until serve reads an unknown model's context size from its server (Settings.with_context).
        context_tokens=window or 0,
        max_tokens=_max_tokens(max_tokens, window) if window else max_tokens or 0,
        temperature=r.optional("TEMPERATURE", float, *RANGES["temperature"]),
        top_p=r.optional("TOP_P", float, *RANGES["top_p"]),
        n=r.number("N", int, 1, 1, 128),
        stop=_stop(r, r.text("STOP")),
        presence_penalty=r.optional("PRESENCE_PENALTY", float, *RANGES["presence_penalty"]),
        frequency_penalty=r.optional("FREQUENCY_PENALTY", float, *RANGES["frequency_penalty"]),
    )


def _max_tokens(given: int | None, window: int) -> int:
    max_tokens = min(1024, window // 2) if given is None else given
    if max_tokens >= window:
        raise SettingsError(
            f"MAX_TOKENS={max_tokens}: must be below MODEL_MAX_TOKENS ({window}) to leave room for the prompt"
        )
    return max_tokens


def _stop(r: _Reader, text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    try:
        parsed = json.loads(text) if text.startswith("[") else None
    except json.JSONDecodeError:
        parsed = None
    if parsed is None:
        stops = tuple(s for s in text.split(",") if s)
        if text.startswith("["):
            # The original service's own .env.example has such a value; it split STOP on commas
            # (viper), so it sent it as a literal stop sequence. Do the same, and say so.
            r.warnings.append(
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


def _database(r: _Reader) -> DatabaseURL:
    url = r.text("DATABASE_URL")
    if url is not None:
        try:
            return DatabaseURL.parse(url)
        except ValueError as exc:
            raise SettingsError(f"DATABASE_URL: {exc}") from None
    host = r.text("DB_HOST")
    if host is None:
        return DatabaseURL.parse("sqlite:///chatservice.db")
    return DatabaseURL.mysql(
        host=host,
        port=r.number("DB_PORT", int, 3306, 1, 65535),
        user=r.text("DB_USER") or "root",
        password=r.raw("DB_PASSWORD", ""),
        database=r.text("DB_NAME") or "chatservice",
    )


def _grace(r: _Reader) -> float:
    # GRPC_GRACE_SECONDS is the older name, from when only gRPC streams were drained.
    key = "SHUTDOWN_GRACE_SECONDS" if r.text("SHUTDOWN_GRACE_SECONDS") is not None else "GRPC_GRACE_SECONDS"
    return r.number(key, float, 10.0, 0.0, 3600.0)


def _choice(r: _Reader, key: str, choices: tuple[str, ...]) -> str:
    value = (r.text(key) or choices[0]).lower()
    if value not in choices:
        raise SettingsError(f"{key}={value!r}: must be {' or '.join(choices)}")
    return value


def _log_level(r: _Reader) -> str:
    level = (r.text("LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL={level!r}: must be DEBUG, INFO, WARNING or ERROR")
    return level


def _http_url(r: _Reader, key: str) -> str | None:
    url = r.text(key)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingsError(
            f"{key}={url!r}: must be an http(s) URL with no query, e.g. https://chat.example.com"
        )
    return url.rstrip("/")


def _template_sid(r: _Reader) -> str | None:
    sid = r.text("WHATSAPP_TEMPLATE_SID")
    if sid is not None and not re.fullmatch(r"HX[0-9a-fA-F]{32}", sid):
        raise SettingsError(f"WHATSAPP_TEMPLATE_SID={sid!r}: must be a Content SID, HX and 32 hex digits")
    return sid


def read_dotenv(path: str = ".env") -> dict[str, str]:
    """KEY=VALUE lines of a .env file (as the original service read); missing file = empty."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: is not UTF-8 text (byte {exc.start})") from None
    values = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load() -> Settings:
    """Settings from ./.env overlaid by the process environment (the environment wins)."""
    return Settings.from_env({**read_dotenv(), **os.environ})
