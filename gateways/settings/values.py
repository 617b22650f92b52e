"""The one Settings object, read from the environment by the table (the Go service's .env keys honoured)."""

from __future__ import annotations

import ipaddress
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateways.llm.context_windows import context_window
from gateways.service.text import is_unicode
from gateways.settings.parse import SettingsError, database_url
from gateways.settings.table import BY_KEY, ENV_VARS
from store.records import ChatParams
from store.url import DatabaseURL


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, typed: one attribute per table row with `field=`, plus the composites below."""

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
    stream_flush_ms: int
    stream_flush_tokens: int
    max_message_chars: int
    max_body_bytes: int
    log_level: str
    shutdown_grace_seconds: float
    log_format: str
    log_content: bool
    auto_title: bool
    metrics_export_port: int | None
    public_url: str | None
    twilio_auth_token: str | None = field(repr=False)
    twilio_account_sid: str | None
    twilio_reply_budget_seconds: float
    twilio_api_base_url: str
    conversation_placement: str
    hosts_per_node: int
    max_live_chats: int | None  # None: sized from the node's memory (live_chats_cap)
    activation_wait_seconds: float
    chat_turns_per_minute: int
    user_turns_per_minute: int
    llm_timeout_seconds: float
    ray_namespace: str
    evict_to: float
    whatsapp_id_key: str | None = field(repr=False)
    max_connections: int | None  # None: sized from the open-file limit (connection_cap)
    read_timeout_seconds: float
    tokenizer: str
    model_max_tokens: int | None  # MODEL_MAX_TOKENS as given (None: the table's, or discovered)
    max_tokens_setting: int | None  # MAX_TOKENS as given
    transcribe_model: str
    voice_max_seconds: float
    audio_max_bytes: int
    image_max_bytes: int
    vision: str
    image_detail: str
    image_tokens: int
    media_timeout_seconds: float
    whatsapp_debounce_ms: int
    whatsapp_template_sid: str | None
    ray_dashboard: bool
    # Values accepted with a caveat (e.g. the original service's STOP), logged at start-up.
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raise SettingsError naming the first bad key."""
        r = _Reader(os.environ if env is None else env)
        settings = cls(
            **{v.field: r.get(v.key) for v in ENV_VARS if v.field is not None},
            default_params=_chat_params(r),
            max_tokens_setting=r.given("MAX_TOKENS"),
            database=_database(r),
            shutdown_grace_seconds=_grace(r),
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
        """MAX_LIVE_CHATS, or half this node's memory at ~64 MiB a conversation actor, or 1 MiB a
        hosted chat (at least 8)."""
        if self.max_live_chats is not None:
            return self.max_live_chats
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        per_chat = (1 << 20) if self.hosted else (64 << 20)
        return max(8, memory // 2 // per_chat)

    @property
    def hosted(self) -> bool:
        """Whether conversations live in host actors (CONVERSATION_PLACEMENT=hosted)."""
        return self.conversation_placement == "hosted"


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
    """Reads a key of the table: its parsed value, or its default when unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.warnings: list[str] = []

    def given(self, key: str) -> Any:
        """The key's parsed value, or None when it is unset (or blank, unless the key is raw)."""
        var, value = BY_KEY[key], self._env.get(key)
        if value is None:
            return None
        if not is_unicode(value):  # bytes that are not UTF-8 reach os.environ as lone surrogates
            raise SettingsError(f"{key}: is not valid UTF-8 text")
        if not var.raw:
            value = value.strip()
            if not value:
                return None
        return var.parse(key, value, self.warnings.append)

    def get(self, key: str) -> Any:
        value = self.given(key)
        return BY_KEY[key].default if value is None else value


def _chat_params(r: _Reader) -> ChatParams:
    model = r.get("MODEL")
    window = r.given("MODEL_MAX_TOKENS") or context_window(model)
    if window is None and r.given("OPENAI_API_KEY") is None:
        raise SettingsError(f"MODEL_MAX_TOKENS: unset, and model {model!r} is unknown; set it")
    max_tokens = r.given("MAX_TOKENS")
    return ChatParams(
        model=model,
        # 0 until serve reads an unknown model's context size from its server (Settings.with_context).
        context_tokens=window or 0,
        max_tokens=_max_tokens(max_tokens, window) if window else max_tokens or 0,
        temperature=r.get("TEMPERATURE"),
        top_p=r.get("TOP_P"),
        n=r.get("N"),
        stop=r.get("STOP"),
        presence_penalty=r.get("PRESENCE_PENALTY"),
        frequency_penalty=r.get("FREQUENCY_PENALTY"),
    )


def _max_tokens(given: int | None, window: int) -> int:
    max_tokens = min(BY_KEY["MAX_TOKENS"].default, window // 2) if given is None else given
    if max_tokens >= window:
        raise SettingsError(
            f"MAX_TOKENS={max_tokens}: must be below MODEL_MAX_TOKENS ({window}) to leave room for the prompt"
        )
    return max_tokens


def _database(r: _Reader) -> DatabaseURL:
    url: DatabaseURL | None = r.given("DATABASE_URL")
    if url is not None:
        return url
    host = r.given("DB_HOST")
    if host is None:
        return database_url("DATABASE_URL", BY_KEY["DATABASE_URL"].default, r.warnings.append)
    return DatabaseURL.mysql(
        host=host,
        port=r.get("DB_PORT"),
        user=r.get("DB_USER"),
        password=r.get("DB_PASSWORD"),
        database=r.get("DB_NAME"),
    )


def _grace(r: _Reader) -> float:
    # GRPC_GRACE_SECONDS is the older name: read only when SHUTDOWN_GRACE_SECONDS is unset.
    value = r.given("SHUTDOWN_GRACE_SECONDS")
    if value is None:
        value = r.given("GRPC_GRACE_SECONDS")
    return BY_KEY["SHUTDOWN_GRACE_SECONDS"].default if value is None else float(value)


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
