"""`chatservice serve` end to end over HTTP: /v1 with SSE, a client that hangs up, the WhatsApp webhook."""

from __future__ import annotations

import http.client
import json
import random
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateways.whatsapp import rules as whatsapp
from store import DatabaseURL
from tests.http_support import parse_events
from tests.llm_server import FakeLLM, words_reply
from tests.serve_process import ServeProcess
from tests.twilio_api import FakeTwilio, Sent

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
TOKEN = "api-token"
TWILIO_TOKEN = "twilio-token"
SID = "AC" + "1" * 32
PUBLIC = "https://chat.example.com"


def request(
    serve: ServeProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        conn.close()


def call(serve: ServeProcess, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"} | headers
    status, _, raw = request(serve, method, path, data, h)
    return status, json.loads(raw) if raw else None


def webhook(serve: ServeProcess, form: dict[str, str]) -> tuple[int, list[str]]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + "/twilio/whatsapp", form)
    status, _, raw = request(
        serve,
        "POST",
        "/twilio/whatsapp",
        urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    return status, [m.text or "" for m in ET.fromstring(raw).findall("Message")] if status == 200 else []


def test_v1_sse_a_hang_up_and_whatsapp_on_the_served_process(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    with FakeTwilio() as twilio_api:
        env = {
            "DATABASE_URL": mysql_url.to_url(),
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": fake_llm.base_url,
            "AUTO_TITLE": "0",
            "RAY_ADDRESS": ray_session,
            "AUTH_TOKEN": TOKEN,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_ACCOUNT_SID": SID,
            "PUBLIC_URL": PUBLIC,
            "TWILIO_API_BASE_URL": twilio_api.base_url,
            "TWILIO_REPLY_BUDGET_SECONDS": "2",
        }
        with ServeProcess(env) as serve:
            status, kind, raw = request(serve, "GET", "/v1/openapi.json")
            assert status == 200 and kind.startswith("application/json")
            assert "/v1/users/{user_id}/chats/{chat_id}/messages" in json.loads(raw)["paths"]

            user = f"e2e-{random.randrange(10**9)}"
            status, chat = call(serve, "POST", f"/v1/users/{user}/chats", {"system_prompt": "Seja breve."})
            assert status == 201
            path = f"/v1/users/{user}/chats/{chat['chat_id']}/messages"
            body = json.dumps({"content": "Qual é a capital do Brasil?"}).encode()
            status, kind, raw = request(
                serve,
                "POST",
                path,
                body,
                {"Authorization": TOKEN, "Content-Type": "application/json", "Accept": "text/event-stream"},
            )
            events = parse_events(raw)
            assert status == 200 and kind.startswith("text/event-stream")
            assert events[0][0] == "start" and events[-1][0] == "end"
            assert (
                "".join(d["text"] for e, d in events if e == "delta") == "Echo: Qual é a capital do Brasil?"
            )
            assert events[-1][1]["usage"]["completion_tokens"] == 7  # the fake LLM counts words

            # A client that hangs up mid-answer: the served process stops the LLM request.
            fake_llm.behaviour.reply = words_reply(300)
            fake_llm.behaviour.token_delay = 0.05
            conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=60)
            conn.request(
                "POST",
                path,
                json.dumps({"content": "fale muito"}).encode(),
                {"Authorization": TOKEN, "Content-Type": "application/json", "Accept": "text/event-stream"},
            )
            r = conn.getresponse()
            assert r.status == 200 and r.readline().startswith(b"event: start")
            while not r.readline().startswith(b"event: delta"):
                pass  # hang up once part of the answer has arrived
            conn.close()
            assert fake_llm.wait_for(lambda: fake_llm.records[-1].disconnected, 30)
            assert not fake_llm.records[-1].finished

            def last_is_interrupted() -> bool:
                page = call(serve, "GET", path)[1]["messages"]
                return page[-1]["role"] == "assistant" and page[-1]["status"] == "interrupted"

            assert fake_llm.wait_for(last_is_interrupted, 30)
            fake_llm.behaviour.reply = lambda messages: "Brasília."
            fake_llm.behaviour.token_delay = 0

            # WhatsApp: inline within the budget, then a slow answer through the REST API.
            sender = f"whatsapp:+5521{random.randrange(10**8, 10**9)}"
            form = {"MessageSid": f"SM{random.randrange(10**20):032d}", "AccountSid": SID, "From": sender}
            form |= {"To": "whatsapp:+14155238886", "Body": "Qual é a capital?", "NumMedia": "0"}
            status, inline = webhook(serve, form)
            # Inline if the turn (a new chat's actor included) beat the budget, else through the API.
            assert status == 200 and inline in (["Brasília."], [])
            assert twilio_api.wait_for(
                lambda: inline + [m.body for m in twilio_api.sent] == ["Brasília."], 60
            )
            assert webhook(serve, form) == (200, [])  # Twilio's retry
            fake_llm.behaviour.ttft = 5.0  # beyond the budget, whatever the load
            before = len(twilio_api.sent)
            slow = form | {"MessageSid": f"SM{random.randrange(10**20):032d}", "Body": "E da Argentina?"}
            assert webhook(serve, slow) == (200, [])
            assert twilio_api.wait_for(lambda: len(twilio_api.sent) == before + 1, 60)
            assert twilio_api.sent[-1] == Sent(
                SID,
                (SID, TWILIO_TOKEN),
                sender,
                "whatsapp:+14155238886",
                "Brasília.",
                status_callback=f"{PUBLIC}/twilio/whatsapp/status",  # delivery status comes back signed
            )
            status, chats = call(serve, "GET", f"/v1/users/{sender}/chats")
            key = whatsapp.id_key(None, TWILIO_TOKEN)
            assert [c["chat_id"] for c in chats["chats"]] == [whatsapp.chat_id_for(sender, 1, key)]
        assert serve.proc is not None and serve.proc.returncode == 0, serve.output()
