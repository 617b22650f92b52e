"""Settings from the environment: the Go service's keys, defaults, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateways.settings import ENV_VARS, Settings, SettingsError, read_dotenv


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_no_configuration_gives_a_local_offline_service_on_sqlite() -> None:
    s = settings()
    assert (s.host, s.web_port, s.grpc_port) == ("127.0.0.1", 8080, 50051)
    assert s.offline and s.auth_token is None and s.ray_address is None
    assert s.database.kind == "sqlite" and s.database.path.endswith("chatservice.db")
    assert s.default_params.model == "gpt-4o-mini"
    assert s.default_params.context_tokens == 128_000
    assert s.default_params.max_tokens == 1024
    assert s.initial_chat_message == "You are a helpful assistant."


def test_the_original_services_env_keys_are_honoured() -> None:
    s = settings(
        WEB_SERVER_PORT="9000",
        GRPC_SERVER_PORT="9001",
        AUTH_TOKEN="tok",
        OPENAI_API_KEY="sk",
        MODEL="gpt-4",
        MODEL_MAX_TOKENS="8192",
        TEMPERATURE="0.7",
        TOP_P="0.9",
        N="1",
        STOP="END,STOP",
        MAX_TOKENS="300",
        INITIAL_CHAT_MESSAGE="Seja breve.",
        DB_HOST="db",
        DB_PORT="3307",
        DB_USER="chat",
        DB_PASSWORD="p@ss",
        DB_NAME="chats",
        PRESENCE_PENALTY="0.5",
        FREQUENCY_PENALTY="-0.5",
        OPENAI_BASE_URL="http://llm/v1",
    )
    p = s.default_params
    assert (s.web_port, s.grpc_port, s.auth_token, s.openai_api_key) == (9000, 9001, "tok", "sk")
    assert (p.model, p.context_tokens, p.max_tokens, p.temperature, p.top_p) == ("gpt-4", 8192, 300, 0.7, 0.9)
    assert (p.stop, p.presence_penalty, p.frequency_penalty) == (("END", "STOP"), 0.5, -0.5)
    assert s.initial_chat_message == "Seja breve."
    db = s.database
    assert (db.kind, db.host, db.port, db.user, db.password, db.database) == (
        "mysql",
        "db",
        3307,
        "chat",
        "p@ss",
        "chats",
    )


def test_database_url_wins_over_db_parts() -> None:
    s = settings(DATABASE_URL="mysql://u:p%40x@h:3306/d", DB_HOST="ignored")
    assert (s.database.host, s.database.password) == ("h", "p@x")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"TEMPERATURE": "abc"}, "TEMPERATURE"),
        ({"TEMPERATURE": "3"}, "TEMPERATURE"),
        ({"MAX_TOKENS": "-5"}, "MAX_TOKENS"),
        ({"MAX_TOKENS": "128000"}, "MAX_TOKENS"),
        ({"MODEL_MAX_TOKENS": "4096", "MAX_TOKENS": "4096"}, "MAX_TOKENS"),
        ({"MODEL": "my-local-llama"}, "MODEL_MAX_TOKENS"),
        ({"WEB_SERVER_PORT": "http"}, "WEB_SERVER_PORT"),
        ({"N": "0"}, "N"),
        ({"STOP": "a,b,c,d,e"}, "STOP"),
        ({"STOP": "[1, 2]"}, "STOP"),
        ({"DATABASE_URL": "postgres://x/y"}, "DATABASE_URL"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"HOST": "0.0.0.0"}, "HOST"),
        ({"SHUTDOWN_GRACE_SECONDS": "-1"}, "SHUTDOWN_GRACE_SECONDS"),
        ({"GRPC_GRACE_SECONDS": "soon"}, "GRPC_GRACE_SECONDS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_CONTENT": "maybe"}, "LOG_CONTENT"),
        ({"RAY_DASHBOARD": "sometimes"}, "RAY_DASHBOARD"),
        ({"METRICS_EXPORT_PORT": "70000"}, "METRICS_EXPORT_PORT"),
    ],
)
def test_a_bad_value_is_a_one_line_error_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    message = str(info.value)
    assert message.startswith(key) and "\n" not in message


def test_an_unknown_model_works_once_its_window_is_given() -> None:
    p = settings(MODEL="my-local-llama", MODEL_MAX_TOKENS="8192").default_params
    assert (p.context_tokens, p.max_tokens) == (8192, 1024)


def test_a_public_host_is_allowed_with_a_token() -> None:
    assert settings(HOST="0.0.0.0", AUTH_TOKEN="secret").host == "0.0.0.0"
    assert settings(HOST="localhost").host == "localhost"


def test_stop_takes_a_json_list_with_commas_inside() -> None:
    assert settings(STOP='["a,b", "c"]').default_params.stop == ("a,b", "c")


def test_the_original_services_stop_value_is_one_literal_sequence_with_a_warning() -> None:
    # Its .env.example has STOP=["\super-end\"]: not JSON; the original split it on commas.
    s = settings(STOP='["\\super-end\\"]')
    assert s.default_params.stop == ('["\\super-end\\"]',)
    assert len(s.warnings) == 1 and "not a JSON list" in s.warnings[0] and "\n" not in s.warnings[0]
    assert settings(STOP="[a,b").default_params.stop == ("[a", "b")
    assert settings(STOP='["END"]').warnings == settings(STOP="END").warnings == ()


def test_secrets_never_appear_in_the_settings_repr() -> None:
    text = repr(settings(AUTH_TOKEN="tok-123", OPENAI_API_KEY="sk-456", DATABASE_URL="mysql://u:pw-789@h/d"))
    assert "tok-123" not in text and "sk-456" not in text and "pw-789" not in text


def test_dotenv_lines_are_read_like_the_original_service(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nAUTH_TOKEN=abc\nexport MODEL='gpt-4o'\nTEMPERATURE=\"0.2\"\n\nnoise\n")
    assert read_dotenv(str(env)) == {"AUTH_TOKEN": "abc", "MODEL": "gpt-4o", "TEMPERATURE": "0.2"}
    assert read_dotenv(str(tmp_path / "missing")) == {}


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [v.key for v in ENV_VARS if f"`{v.key}`" not in readme]
    assert not missing, f"README does not document {missing}"


def test_operations_settings_default_to_quiet_text_logs_and_a_ten_second_grace() -> None:
    s = settings()
    assert (s.log_format, s.log_content, s.shutdown_grace_seconds, s.metrics_export_port) == (
        "text",
        False,
        10.0,
        None,
    )
    s = settings(
        LOG_FORMAT="JSON", LOG_CONTENT="yes", SHUTDOWN_GRACE_SECONDS="2.5", METRICS_EXPORT_PORT="9100"
    )
    assert (s.log_format, s.log_content, s.shutdown_grace_seconds, s.metrics_export_port) == (
        "json",
        True,
        2.5,
        9100,
    )
    assert settings(LOG_CONTENT="0").log_content is False
    assert settings().ray_dashboard is True and settings(RAY_DASHBOARD="0").ray_dashboard is False


def test_the_older_grpc_grace_name_is_still_accepted_and_the_new_one_wins() -> None:
    assert settings(GRPC_GRACE_SECONDS="30").shutdown_grace_seconds == 30.0
    assert settings(GRPC_GRACE_SECONDS="30", SHUTDOWN_GRACE_SECONDS="5").shutdown_grace_seconds == 5.0


def test_evict_to_defaults_to_three_quarters_of_the_window() -> None:
    assert settings().evict_to == 0.75
    assert settings(EVICT_TO="1").evict_to == 1.0
    assert settings(EVICT_TO="0.5").evict_to == 0.5


@pytest.mark.parametrize("value", ["0.4", "1.01", "0", "half", "nan", "inf"])
def test_evict_to_outside_a_half_to_one_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^EVICT_TO="):
        Settings.from_env({"EVICT_TO": value})


def test_whatsapp_media_settings_have_defaults_and_one_line_errors() -> None:
    s = settings()
    assert (s.transcribe_model, s.voice_max_seconds, s.audio_max_bytes, s.image_max_bytes) == (
        "whisper-1", 300.0, 16 << 20, 5 << 20,
    )  # fmt: skip
    assert (s.vision, s.image_detail, s.image_tokens, s.whatsapp_debounce_ms) == ("auto", "high", 1000, 1500)
    assert s.whatsapp_template_sid is None and s.media_timeout_seconds == 15.0
    s = settings(
        VISION="ON", IMAGE_DETAIL="low", WHATSAPP_DEBOUNCE_MS="0", WHATSAPP_TEMPLATE_SID="HX" + "a" * 32
    )
    assert (s.vision, s.image_detail, s.whatsapp_debounce_ms, s.whatsapp_template_sid) == (
        "on",
        "low",
        0,
        "HX" + "a" * 32,
    )
    for key, value in [
        ("VISION", "maybe"),
        ("AUDIO_MAX_BYTES", str(26 << 20)),  # OpenAI's audio API takes at most 25 MiB
        ("IMAGE_MAX_BYTES", str(16 << 20)),  # a MEDIUMBLOB holds less than 16 MiB
        ("WHATSAPP_TEMPLATE_SID", "my-template"),
        ("WHATSAPP_DEBOUNCE_MS", "-1"),
    ]:
        with pytest.raises(SettingsError, match=key):
            settings(**{key: value})
