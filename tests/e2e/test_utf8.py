"""JSON answers are UTF-8 text: accents as themselves (not \\u escapes), declared charset=utf-8."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from store import DatabaseURL
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
TOKEN = "utf8-token"
QUESTION = "Qual é a capital do Brasil? Olá, você, 東京, 🙂"


@pytest.fixture(scope="module")
def serve(ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM) -> Iterator[ServeProcess]:
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": llm_server.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "AUTH_TOKEN": TOKEN,
    }
    with ServeProcess(env) as process:
        yield process


def raw(serve: ServeProcess, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=60)
    try:
        conn.request(method, path, body, {"Authorization": TOKEN, "Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        conn.close()


def utf8_json(content_type: str, body: bytes) -> Any:
    assert content_type == "application/json; charset=utf-8"
    assert b"\\u" not in body, body  # nothing escaped that UTF-8 can carry
    return json.loads(body.decode("utf-8", errors="strict"))


def test_answers_carry_accents_and_emoji_as_utf8(serve: ServeProcess, fake_llm: FakeLLM) -> None:
    status, kind, body = raw(
        serve, "POST", "/chat", json.dumps({"user_id": "u8", "user_message": QUESTION}).encode()
    )
    assert status == 200 and f"Echo: {QUESTION}".encode() in body
    assert utf8_json(kind, body)["content"] == f"Echo: {QUESTION}"

    user = quote("usuária-ç", safe="")
    status, kind, body = raw(
        serve, "POST", f"/v1/users/{user}/chats", json.dumps({"system_prompt": "Você é breve."}).encode()
    )
    chat = utf8_json(kind, body)
    assert status == 201 and chat["user_id"] == "usuária-ç" and "usuária-ç".encode() in body
    path = f"/v1/users/{user}/chats/{chat['chat_id']}/messages"
    status, kind, body = raw(serve, "POST", path, json.dumps({"content": QUESTION}).encode())
    assert status == 200 and utf8_json(kind, body)["content"] == f"Echo: {QUESTION}"
    status, kind, body = raw(serve, "GET", f"/v1/users/{user}/chats")
    assert status == 200 and utf8_json(kind, body)["chats"][0]["title"] == QUESTION

    status, kind, body = raw(serve, "POST", "/chat", b'{"user_id": "u8", "user_message": 1}')
    assert status == 400 and utf8_json(kind, body)["error"]["code"] == "invalid_argument"


def test_a_lone_surrogate_in_a_request_is_never_a_server_error(
    serve: ServeProcess, fake_llm: FakeLLM
) -> None:
    """Half an emoji (valid JSON, not valid UTF-8) as the message: refused or answered, as JSON."""
    status, kind, answer = raw(serve, "POST", "/chat", b'{"user_id": "u8", "user_message": "meio \\ud83d"}')
    assert status < 500, answer
    assert kind == "application/json; charset=utf-8" and "error" in json.loads(answer.decode("utf-8"))
