"""Secrets never appear in logs or error messages, whatever goes wrong."""

from __future__ import annotations

import collections
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import ray

from store import DatabaseURL
from tests.faults.conftest import serve_env
from tests.faults.mariadb import PrivateMariaDB
from tests.llm_server import Behaviour, FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.ray]
SECRETS = {
    "AUTH_TOKEN": "tok-Zq81vXw-secret",
    "OPENAI_API_KEY": "sk-Kd02mPq-secret",
    "TWILIO_AUTH_TOKEN": "twl-Hn55cRt-secret",
    "DB_PASSWORD": "pw-Yb47sLe-secret",
}


def call(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(url, body or None, headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return str(e.read().decode())


def ray_logs() -> str:
    # Test-only reach into Ray's internals: where this session's workers write their logs.
    node = ray._private.worker._global_node
    logs = Path(node.get_logs_dir_path()) if node is not None else None
    if logs is None or not logs.is_dir():
        return ""
    return "\n".join(p.read_text(errors="replace") for p in logs.glob("*") if p.is_file())


def test_secrets_stay_out_of_logs_and_errors(
    ray_session: str, fault_db: PrivateMariaDB, fault_llm: FakeLLM
) -> None:
    password = SECRETS["DB_PASSWORD"]
    fault_db.sql(f"CREATE USER IF NOT EXISTS 'keeper'@'%' IDENTIFIED BY '{password}'")
    fault_db.sql("GRANT ALL PRIVILEGES ON chatservice.* TO 'keeper'@'%'")
    url = DatabaseURL.mysql("127.0.0.1", fault_db.port, "keeper", password, "chatservice")
    env = serve_env(ray_session, fault_db, fault_llm, LOG_LEVEL="DEBUG") | {
        "DATABASE_URL": url.to_url(),
        "AUTH_TOKEN": SECRETS["AUTH_TOKEN"],
        "OPENAI_API_KEY": SECRETS["OPENAI_API_KEY"],
        "TWILIO_AUTH_TOKEN": SECRETS["TWILIO_AUTH_TOKEN"],
    }
    answers = []
    with ServeProcess(env) as serve:
        json_body = {"Content-Type": "application/json"}
        good = {"Authorization": SECRETS["AUTH_TOKEN"]} | json_body
        chat = json.dumps({"user_id": "u", "user_message": "hello"}).encode()
        answers.append(call("POST", f"{serve.url}/chat", chat, good))
        answers.append(call("POST", f"{serve.url}/chat", chat, {"Authorization": "wrong"} | json_body))
        answers.append(call("POST", f"{serve.url}/chat", b"{not json", good))
        answers.append(
            call("POST", f"{serve.url}/twilio/whatsapp", b"From=x&Body=hi", {"X-Twilio-Signature": "x"})
        )
        fault_llm.behaviour = Behaviour(failures=collections.deque([401, 401, 401, 500, 500, 500]))
        answers.append(call("POST", f"{serve.url}/chat", chat, good))  # the LLM rejects the key
        answers.append(call("POST", f"{serve.url}/chat", chat, good))  # the LLM fails
        fault_db.sql("DROP USER 'keeper'@'%'")  # the database now refuses the password
        answers.append(call("GET", f"{serve.url}/readyz"))
        answers.append(
            call(
                "POST", f"{serve.url}/chat", json.dumps({"user_id": "v", "user_message": "x"}).encode(), good
            )
        )
        log = serve.output()
    assert "401" in answers[1] or "unauthenticated" in answers[1]
    assert any("credentials" in a for a in answers), answers
    seen = "\n".join([log, *answers, ray_logs()])
    leaked = [key for key, secret in SECRETS.items() if secret in seen]
    assert leaked == [], f"secrets in logs or responses: {leaked}"
