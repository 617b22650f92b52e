"""Attacks on the served process (issue 13): each one as an attacker runs it, and what must hold.

One `chatservice serve` with no AUTH_TOKEN (the zero-configuration default, loopback only) on
MariaDB, the session Ray and the fake LLM, with the Twilio webhook; the slow-client and exposure
attacks start their own (test_slow_clients.py, test_exposure.py).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest

from gateways.rpc.gen import chat_pb2, chat_pb2_grpc
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc
from gateways.whatsapp import rules as whatsapp
from store import DatabaseURL
from tests.e2e.attack_support import (
    ACCOUNT,
    PUBLIC,
    TWILIO_TOKEN,
    delivery,
    field,
    gateway_log_dir,
    log_text,
    post_json,
    raw_grpc,
    request,
    signature,
    wait_until,
    webhook,
)
from tests.llm_server import Behaviour, FakeLLM
from tests.serve_process import ServeProcess
from tests.twilio_api import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
KEY = whatsapp.id_key(None, TWILIO_TOKEN)
ATTACKER = "https://attacker.example"


def ray_log_dir() -> Path:
    import ray

    # Test-only reach into Ray's internals: where the session's workers (the actors) write.
    node = ray._private.worker._global_node
    assert node is not None
    return Path(node.get_logs_dir_path())


@pytest.fixture(scope="module")
def serve(ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM) -> Iterator[ServeProcess]:
    with FakeTwilio() as twilio_api:
        env = {
            "DATABASE_URL": mysql_url.to_url(),
            "OPENAI_API_KEY": "sk-attacks",
            "OPENAI_BASE_URL": llm_server.base_url,
            "AUTO_TITLE": "0",
            "RAY_ADDRESS": ray_session,
            "RAY_NAMESPACE": f"attacks-{uuid.uuid4().hex[:8]}",
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_API_BASE_URL": twilio_api.base_url,
            "PUBLIC_URL": PUBLIC,
            "CHAT_TURNS_PER_MINUTE": "0",
            "USER_TURNS_PER_MINUTE": "0",
            "LOG_LEVEL": "DEBUG",  # the most a log can say: still no message text, no number
        }
        with ServeProcess(env) as process:
            yield process
        assert process.proc is not None and process.proc.returncode == 0, process.output()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def number() -> str:
    return f"whatsapp:+5511{random.randrange(10**8, 10**9)}"


def chats_of(serve: ServeProcess, user_id: str) -> list[str]:
    reply = request(serve, "GET", f"/v1/users/{quote(user_id, safe='')}/chats")
    assert reply.status == 200, reply
    return [c["chat_id"] for c in reply.json()["chats"]]


# -- 2. cross-site requests and DNS rebinding ------------------------------------------------------


def test_a_page_on_another_site_cannot_post_and_a_rebound_name_cannot_read(
    serve: ServeProcess, fake_llm: FakeLLM
) -> None:
    victim = user()
    body = json.dumps({"user_id": victim, "user_message": "from evil.example"})
    # What a page on another origin can send without asking first: text/plain, a form.
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        forged = request(serve, "POST", "/chat", body.encode(), {"Content-Type": kind, "Origin": ATTACKER})
        assert (forged.status, forged.code()) == (403, "permission_denied")
        no_origin = request(serve, "POST", "/chat", body.encode(), {"Content-Type": kind})
        assert (no_origin.status, no_origin.code()) == (415, "unsupported_media_type")
    assert post_json(serve, "/chat", body, Origin="null").status == 403  # sandboxed frame, file: page
    created = request(serve, "POST", f"/v1/users/{victim}/chats", None, {"Origin": ATTACKER})
    assert created.status == 403
    assert fake_llm.records == [] and chats_of(serve, victim) == []

    # The service's own page (same origin) works; another site cannot end its chat.
    own = f"http://127.0.0.1:{serve.web_port}"
    chat = post_json(serve, f"/v1/users/{victim}/chats", "{}", Origin=own)
    assert chat.status == 201
    chat_id = chat.json()["chat_id"]
    ended = request(serve, "POST", f"/v1/users/{victim}/chats/{chat_id}/end", None, {"Origin": ATTACKER})
    assert ended.status == 403
    assert request(serve, "GET", f"/v1/users/{victim}/chats/{chat_id}").json()["status"] == "active"

    # DNS rebinding: attacker.example now resolves to 127.0.0.1, and the browser sends its name.
    rebound = request(
        serve, "GET", f"/v1/users/{victim}/chats", None, {"Host": f"attacker.example:{serve.web_port}"}
    )
    assert (rebound.status, rebound.code()) == (
        421,
        "misdirected_request",
    ) and chat_id.encode() not in rebound.body
    for name in ("localhost", "127.0.0.1", "chat.example.com"):  # loopback names, PUBLIC_URL's host
        assert request(serve, "GET", f"/v1/users/{victim}/chats", None, {"Host": name}).status == 200
    assert request(serve, "GET", "/", None, {"Host": "attacker.example"}).status == 421


# -- 4. the WhatsApp namespace ---------------------------------------------------------------------


def test_no_api_can_squat_a_whatsapp_number(serve: ServeProcess, fake_llm: FakeLLM) -> None:
    sender = number()
    targets = [whatsapp.chat_id_for(sender, 1, KEY), f"wa:{sender.removeprefix('whatsapp:')}:1", "WA:x:2"]
    mallory = user()
    for target in targets:
        squat = post_json(serve, f"/v1/users/{mallory}/chats", json.dumps({"chat_id": target}))
        assert squat.status == 400 and "reserved for WhatsApp" in squat.json()["error"]["message"]
        legacy = post_json(
            serve, "/chat", json.dumps({"chat_id": target, "user_id": mallory, "user_message": "x"})
        )
        assert legacy.status == 400 and "reserved" in legacy.body.decode()
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        v1, original = pb_grpc.ChatServiceStub(channel), chat_pb2_grpc.ChatServiceStub(channel)
        calls = [
            lambda: v1.CreateChat(pb.CreateChatRequest(user_id=mallory, chat_id=targets[0]), timeout=60),
            lambda: list(
                v1.SendMessage(pb.SendMessageRequest(user_id=mallory, chat_id=targets[0], content="x"))
            ),
            lambda: list(
                original.ChatStream(
                    chat_pb2.ChatRequest(user_id=mallory, chat_id=targets[0], user_message="x")
                )
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "reserved for WhatsApp" in str(refused.value.details())
    assert fake_llm.records == [] and chats_of(serve, mallory) == []
    # The number's owner is not locked out: their first message opens their own chat (answered
    # inline, or through the REST API if the new chat's actor took longer than the reply budget).
    status, inline = webhook(serve, delivery(sender, "oi"))
    assert status == 200 and inline in (["Echo: oi"], [])
    assert wait_until(lambda: chats_of(serve, sender) == [targets[0]], 60)


# -- 3. a captured delivery replayed with its fields shifted ---------------------------------------


def test_a_captured_delivery_replayed_with_shifted_fields_runs_no_second_turn(
    serve: ServeProcess, fake_llm: FakeLLM
) -> None:
    sender, text = number(), f"quanto é 2+{random.randrange(10**9)}?"
    form = delivery(sender, text)

    def asked() -> int:  # this turn's LLM requests (another test's late WhatsApp turn may land here)
        return sum(any(m.get("content") == text for m in r.body["messages"]) for r in fake_llm.records)

    captured = signature(form)
    status, inline = webhook(serve, form, captured)
    assert status == 200 and inline in ([f"Echo: {text}"], [])
    assert wait_until(lambda: asked() == 1, 60)
    shifted = {k: v for k, v in form.items() if k != "NumMedia"} | {
        "MessageSid": form["MessageSid"] + "NumMedia0"
    }
    assert signature(shifted) == captured  # no key needed: the captured signature still fits
    assert webhook(serve, shifted, captured)[0] == 400
    assert webhook(serve, form, captured) == (200, [])  # and a plain retry is a retry
    assert not wait_until(lambda: asked() > 1, 3)


# -- 8. lone surrogates, and message text in logs ---------------------------------------------------


def test_lone_surrogates_are_400_and_no_log_ever_holds_message_text(
    serve: ServeProcess, fake_llm: FakeLLM
) -> None:
    secret = f"segredo-{uuid.uuid4().hex}"  # written nowhere but in what users send
    someone = user()
    chat_id = post_json(serve, f"/v1/users/{someone}/chats", "{}").json()["chat_id"]
    messages = f"/v1/users/{someone}/chats/{chat_id}/messages"
    half = "\\ud83d"  # what a JavaScript client sends after cutting an emoji in two, as JSON
    refused = [
        post_json(serve, "/chat", f'{{"user_id": "{someone}", "user_message": "{secret} {half}"}}'),
        post_json(serve, "/chat", f'{{"user_id": "{secret}{half}", "user_message": "{secret}"}}'),
        post_json(serve, messages, f'{{"content": "{secret} {half}"}}'),
        post_json(serve, f"/v1/users/{someone}/chats", f'{{"system_prompt": "{secret} {half}"}}'),
        post_json(serve, f"/v1/users/{someone}/chats", f'{{"stop": ["{secret}{half}"]}}'),
    ]
    assert [r.status for r in refused] == [400] * 5, refused
    assert all("lone surrogate" in r.json()["error"]["message"] for r in refused)
    # gRPC strings are UTF-8 on the wire: the same half-character as bytes does not parse.
    for method, stream, payload in (
        (
            "/chatservice.v1.ChatService/SendMessage",
            True,
            field(1, someone.encode()) + field(3, b"\xed\xa0\xbd"),
        ),
        ("/pb.ChatService/ChatStream", True, field(2, someone.encode()) + field(3, b"x\xed\xa0\xbd")),
        ("/chatservice.v1.ChatService/CreateChat", False, field(1, b"\xed\xa0\xbd")),
    ):
        assert raw_grpc(serve, method, payload, stream) == grpc.StatusCode.INVALID_ARGUMENT
    assert fake_llm.records == []

    # Never a 503 retry loop: the chat answers its next message at once.
    answered = post_json(serve, messages, json.dumps({"content": f"{secret} inteiro 😀"}))
    assert answered.status == 200 and answered.json()["content"] == f"Echo: {secret} inteiro 😀"
    # Error paths carry no text either: an LLM that fails, a message too large for the window.
    fake_llm.behaviour = Behaviour()
    fake_llm.behaviour.failures.extend([500] * 6)
    assert post_json(serve, messages, json.dumps({"content": f"{secret} falhou"})).status == 503
    assert post_json(serve, messages, json.dumps({"content": f"{secret} " * 30_000})).status == 413
    texts = log_text(serve, [p for p in (gateway_log_dir(serve), ray_log_dir()) if p])
    assert secret not in texts
    assert "\\ud83d" not in texts and "\\xed\\xa0\\xbd" not in texts


# -- 9. what used to be a 500 ------------------------------------------------------------------------


def test_what_used_to_fail_with_500_is_4xx_and_logs_no_traceback(serve: ServeProcess) -> None:
    before = serve.output().count("Traceback")
    someone = user()
    chat_id = post_json(serve, f"/v1/users/{someone}/chats", "{}").json()["chat_id"]
    for signed in ("x", signature({})):
        file_part = (
            b'--zz\r\nContent-Disposition: form-data; name="Body"; filename="a.txt"\r\n\r\nhi\r\n--zz--\r\n'
        )
        multipart = {"Content-Type": "multipart/form-data; boundary=zz", "X-Twilio-Signature": signed}
        assert request(serve, "POST", "/twilio/whatsapp", file_part, multipart).status == 403
        broken = b"--zz\r\nNo colon in this header\r\n\r\nhi\r\n--zz--\r\n"
        assert request(serve, "POST", "/twilio/whatsapp", broken, multipart).status == 403
    deep = "[" * 1000 + "]" * 1000
    for path in ("/chat", f"/v1/users/{someone}/chats", f"/v1/users/{someone}/chats/{chat_id}/messages"):
        nested = post_json(
            serve, path, f'{{"user_id": "{someone}", "user_message": {deep}, "content": {deep}}}'
        )
        assert (nested.status, nested.code()) == (400, "invalid_argument"), (path, nested)
    token = base64.urlsafe_b64encode(json.dumps({"s": 2**63}).encode()).decode()  # as tokens are
    listed = request(serve, "GET", f"/v1/users/{someone}/chats/{chat_id}/messages?page_token={token}")
    assert listed.status == 400 and "page_token" in listed.json()["error"]["message"]
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        v1 = pb_grpc.ChatServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            v1.ListMessages(
                pb.ListMessagesRequest(user_id=someone, chat_id=chat_id, page_token=token), timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert serve.output().count("Traceback") == before


# -- 10. ids with a final newline ----------------------------------------------------------------------


def test_chat_ids_ending_in_a_newline_are_400(serve: ServeProcess, fake_llm: FakeLLM) -> None:
    someone = user()
    for chat_id in ("abc\n", "a" * 128 + "\n", "b" * 127 + "\n"):
        created = post_json(serve, f"/v1/users/{someone}/chats", json.dumps({"chat_id": chat_id}))
        assert created.status == 400, created
        legacy = post_json(
            serve, "/chat", json.dumps({"chat_id": chat_id, "user_id": someone, "user_message": "x"})
        )
        assert legacy.status == 400, legacy
        assert request(serve, "GET", f"/v1/users/{someone}/chats/{quote(chat_id)}").status == 400
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.ChatServiceStub(channel).CreateChat(
                pb.CreateChatRequest(user_id=someone, chat_id="a" * 128 + "\n"), timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert chats_of(serve, someone) == [] and fake_llm.records == []  # nothing stored, truncated or not


# -- 14. a message with nothing visible in it ---------------------------------------------------------


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c\u200d\ufeff", "\u00a0 \u2060", "\u3164"])
def test_a_message_with_nothing_visible_is_empty(
    serve: ServeProcess, fake_llm: FakeLLM, invisible: str
) -> None:
    someone = user()
    answer = post_json(serve, "/chat", json.dumps({"user_id": someone, "user_message": invisible}))
    assert answer.status == 400 and "empty" in answer.json()["error"]["message"]
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            list(
                pb_grpc.ChatServiceStub(channel).SendMessage(
                    pb.SendMessageRequest(user_id=someone, content=invisible)
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert webhook(serve, delivery(number(), invisible)) == (200, [])
    assert fake_llm.records == [] and chats_of(serve, someone) == []
