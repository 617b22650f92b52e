"""`chatservice serve` end to end: MariaDB, a local OpenAI-compatible server, real HTTP requests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from store import DatabaseURL, open_store
from store.records import Role
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]


def post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": token} if token else {})
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_on_mariadb_with_an_openai_compatible_llm(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "AUTH_TOKEN": "tok",
        "MODEL": "gpt-4o-mini",
        "TEMPERATURE": "0.5",
        "INITIAL_CHAT_MESSAGE": "Responda em português.",
    }
    with ServeProcess(env) as serve:
        status, first = post(
            f"{serve.url}/chat", {"user_id": "e2e", "user_message": "Qual é a capital do Brasil?"}, "tok"
        )
        assert status == 200 and first["content"] == "Echo: Qual é a capital do Brasil?"
        chat_id = first["chat_id"]
        status, second = post(
            f"{serve.url}/chat",
            {"chat_id": chat_id, "user_id": "e2e", "user_message": "Obrigado!"},
            "Bearer tok",
        )
        assert (status, second["chat_id"]) == (200, chat_id)
        assert post(f"{serve.url}/chat", {"user_id": "e2e", "user_message": "x"})[0] == 401
    assert serve.proc is not None and serve.proc.returncode == 0, serve.output()

    sent = fake_llm.records[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.5
    assert [m["content"] for m in sent["messages"]] == [
        "Responda em português.",
        "Qual é a capital do Brasil?",
        "Echo: Qual é a capital do Brasil?",
        "Obrigado!",
    ]

    import asyncio

    async def landed() -> tuple[Any, list[Any]]:
        store = open_store(mysql_url)
        try:
            return await store.get_chat(chat_id), await store.list_messages(chat_id, include_erased=True)
        finally:
            await store.close()

    chat, messages = asyncio.run(landed())
    assert chat.user_id == "e2e" and chat.params.model == "gpt-4o-mini" and chat.params.temperature == 0.5
    assert chat.title == "Qual é a capital do Brasil?" and chat.version == 3
    assert [(m.seq, m.role) for m in messages] == [
        (1, Role.SYSTEM),
        (2, Role.USER),
        (3, Role.ASSISTANT),
        (4, Role.USER),
        (5, Role.ASSISTANT),
    ]
    assert all(m.tokens > 3 and not m.erased for m in messages)
    assert messages[2].turn_id == messages[1].turn_id and messages[2].finish_reason == "stop"


def test_with_no_configuration_it_answers_offline_on_sqlite_and_survives_a_restart(tmp_path: Path) -> None:
    """The README's first run: its own local Ray, a SQLite file, the offline responder."""
    with ServeProcess({}, cwd=tmp_path) as serve:
        status, first = post(
            f"{serve.url}/chat", {"user_id": "u1", "user_message": "Qual é a capital do Brasil?"}
        )
        assert status == 200 and first["content"].startswith("[offline]")
        assert "OPENAI_API_KEY is not set" in serve.output()
        # Its own Ray: the dashboard, the Prometheus endpoint and the log in Ray's log directory.
        assert "Ray dashboard: http://127.0.0.1:" in serve.output()
        assert "Ray metrics (Prometheus): http://" in serve.output()
        assert "chatservice-gateway-" in serve.output()
        # Ray's token, said once in the service's words, and not by Ray at every start.
        assert serve.output().count("Ray token authentication is on: the token is in ") == 1
        assert "Token authentication is enabled for this Ray cluster" not in serve.output()
    assert (tmp_path / "chatservice.db").exists()
    with ServeProcess({}, cwd=tmp_path) as serve:
        status, again = post(
            f"{serve.url}/chat", {"chat_id": first["chat_id"], "user_id": "u1", "user_message": "E agora?"}
        )
        assert status == 200
        assert "holds 4 messages" in again["content"]  # system, question, answer, this message
