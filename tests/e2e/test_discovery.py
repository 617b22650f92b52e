"""`chatservice serve` reads an unknown model's context size from its server, and keeps chats within it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from store import DatabaseURL
from tests.conftest import free_ports
from tests.llm_server import Behaviour, FakeLLM, words_reply
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
PT = "A cidade de São Paulo é a maior do Brasil, com milhões de habitantes e muitos bairros históricos. "


def environment(db: DatabaseURL, llm: FakeLLM, ray: str, **extra: str) -> dict[str, str]:
    base = {
        "DATABASE_URL": db.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": llm.base_url,
        "AUTO_TITLE": "0",
    }
    return base | {"RAY_ADDRESS": ray, "MODEL": "toy"} | extra


def call(serve: ServeProcess, path: str, body: dict[str, Any], sse: bool = False) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} | ({"Accept": "text/event-stream"} if sse else {})
    req = urllib.request.Request(serve.url + path, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def failed_start(env: dict[str, str]) -> tuple[int, str]:
    """Run serve that should refuse to start: its exit code and what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "gateways.cli", "serve"],
        # Ports of its own: a service on the default ports must not decide how this one fails.
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **free_ports(), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    ("backend", "source"),
    [("vllm", "vLLM GET /v1/models max_model_len"), ("llama-server", "llama.cpp GET /props")],
)
def test_serve_reads_an_unknown_models_context_size_from_its_server(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, backend: str, source: str
) -> None:
    # The server sends no usage, so the window learns only from its overflow answer.
    fake_llm.behaviour = Behaviour(backend=backend, n_ctx=2048, usage=False, reply=words_reply(5))
    env = environment(mysql_url, fake_llm, ray_session, MAX_TOKENS="64", TOKENIZER="tiktoken")
    with ServeProcess(env) as serve:
        assert f"context window of toy: 2048 tokens, from {source}" in serve.output()
        status, raw = call(serve, "/v1/users/e2e/chats", {})
        chat = json.loads(raw)
        assert status == 201 and chat["params"]["context_tokens"] == 2048
        # tiktoken counts these messages about 1.7 times short: the window outgrows the server,
        # whose refusal is recovered from without the client seeing it.
        path = f"/v1/users/e2e/chats/{chat['chat_id']}/messages"
        for i in range(14):
            status, raw = call(serve, path, {"content": f"{i}: {PT * 6}"}, sse=True)
            assert status == 200 and b"event: end" in raw and b"event: error" not in raw, raw[-300:]
        refused = [i for i, r in enumerate(fake_llm.records) if r.refused]
        assert len(refused) == 1 and not fake_llm.records[refused[0] + 1].refused
        assert "context overflow" in serve.output() and chat["chat_id"] in serve.output()


def test_an_explicit_size_larger_than_the_servers_is_a_warning(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="vllm", n_ctx=2048)
    with ServeProcess(environment(mysql_url, fake_llm, ray_session, MODEL_MAX_TOKENS="8192")) as serve:
        assert (
            "MODEL_MAX_TOKENS=8192 is larger than the 2048 tokens the LLM server runs toy with"
            in serve.output()
        )


def test_no_size_anywhere_stops_start_up_with_one_line_saying_what_to_set(
    mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="llamacpp-python", n_ctx=1024)  # it tells no one its n_ctx
    code, err = failed_start(environment(mysql_url, fake_llm, "127.0.0.1:1"))
    lines = [line for line in err.splitlines() if line.startswith("chatservice:")]
    assert code == 2 and len(lines) == 1, err
    assert "MODEL_MAX_TOKENS: unset, model 'toy' is unknown" in lines[0] and lines[0].endswith(
        "set MODEL_MAX_TOKENS"
    )


def test_tokenizer_server_without_a_tokenize_endpoint_stops_start_up(
    mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    fake_llm.behaviour = Behaviour(backend="openai")
    env = environment(mysql_url, fake_llm, "127.0.0.1:1", MODEL_MAX_TOKENS="4096", TOKENIZER="server")
    code, err = failed_start(env)
    assert code == 2 and "TOKENIZER=server: the LLM server offers no tokenize endpoint" in err, err
