"""POST /twilio/whatsapp: signed by the real RequestValidator, answered by the real app, Ray and MariaDB.

Late answers go through the real twilio REST client to a local stand-in for Twilio's API.
"""

from __future__ import annotations

import asyncio
import random
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import ClientTimeout
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from gateways.whatsapp.rules import (
    FAILED_REPLY,
    MEDIA_REPLY,
    NEW_CHAT_REPLY,
    chat_id_for,
    id_key,
    split_message,
    units,
)
from store import DatabaseURL, open_store
from store.records import ChatParams, ChatRecord, ChatStatus, MessageRecord, Role
from tests.http_support import MakeClient, app_clients
from tests.llm_server import FakeLLM
from tests.twilio_api import FakeTwilio, Sent

AUTH = "twilio-auth-token-0123456789abcdef"
SID = "AC" + "0" * 32
PUBLIC = "https://chat.example.com"
WEBHOOK = PUBLIC + "/twilio/whatsapp"
STATUS = PUBLIC + "/twilio/whatsapp/status"  # where answers sent through the REST API report back
OUR_NUMBER = "whatsapp:+14155238886"
KEY = id_key(None, AUTH)  # WHATSAPP_ID_KEY unset: derived from the auth token
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio() as api:
        yield api


@pytest.fixture
async def make_client(
    db_url: DatabaseURL, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:

        async def configured(**env: str) -> Client:
            twilio = {
                "TWILIO_AUTH_TOKEN": AUTH,
                "TWILIO_ACCOUNT_SID": SID,
                "PUBLIC_URL": PUBLIC,
                "TWILIO_API_BASE_URL": twilio_api.base_url,
                "WHATSAPP_DEBOUNCE_MS": "0",  # each message its own turn: bursts are tested apart
            }
            return await make(**(twilio | env))

        yield configured


@pytest.fixture
def sender() -> str:
    return f"whatsapp:+5511{random.randrange(10**8, 10**9)}"


def delivery(sender: str, body: str, **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming WhatsApp message."""
    return {
        "SmsMessageSid": (sid := "SM" + uuid.uuid4().hex),
        "MessageSid": sid,
        "AccountSid": SID,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ProfileName": "Ana",
        "WaId": sender.removeprefix("whatsapp:+"),
        "ApiVersion": "2010-04-01",
    } | extra


def sign(form: dict[str, str], url: str = WEBHOOK, token: str = AUTH) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


async def post(
    client: Client, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    r = await client.post("/twilio/whatsapp", data=form, headers=sign(form) if headers is None else headers)
    return r.status, await r.text()


def replies(twiml: str) -> list[str]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


async def chats_of(db: DatabaseURL, user: str) -> list[ChatRecord]:
    store = open_store(db)
    try:
        return await store.list_chats(user, 100)
    finally:
        await store.close()


async def messages_of(db: DatabaseURL, chat_id: str) -> list[MessageRecord]:
    store = open_store(db)
    try:
        return await store.list_messages(chat_id, include_erased=True)
    finally:
        await store.close()


async def unclaimed(db: DatabaseURL, sid: str) -> bool:
    store = open_store(db)
    try:
        return await store.claim_event(sid, "test")
    finally:
        await store.close()


async def test_a_signed_message_is_answered_inline_with_twiml(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> None:
    client = await make_client()
    r = await client.post(
        "/twilio/whatsapp", data=(form := delivery(sender, "Qual é a capital do Brasil?")), headers=sign(form)
    )
    assert r.status == 200 and r.content_type == "text/xml"
    assert replies(await r.text()) == ["Echo: Qual é a capital do Brasil?"]
    [chat] = await chats_of(db_url, sender)
    assert chat.id == chat_id_for(sender, 1, KEY) and chat.user_id == sender
    assert sender.removeprefix("whatsapp:+") not in chat.id  # no phone number in ids or actor names
    assert [(m.role, m.content) for m in await messages_of(db_url, chat.id)][1:] == [
        (Role.USER, "Qual é a capital do Brasil?"),
        (Role.ASSISTANT, "Echo: Qual é a capital do Brasil?"),
    ]
    assert len(fake_llm.records) == 1 and twilio_api.sent == []


@pytest.mark.parametrize(
    "case", ["tampered body", "wrong URL", "missing header", "wrong token", "internal URL"]
)
async def test_a_bad_signature_is_403_and_nothing_is_stored(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM, case: str
) -> None:
    client = await make_client()
    form = delivery(sender, "hello")
    headers = {
        "tampered body": sign(
            delivery(sender, "hello") | {"MessageSid": form["MessageSid"], "Body": "hellO"}
        ),
        "wrong URL": sign(form, url="https://evil.example.com/twilio/whatsapp"),
        "missing header": {},
        "wrong token": sign(form, token="not-the-token"),
        "internal URL": sign(form, url=str(client.make_url("/twilio/whatsapp"))),  # PUBLIC_URL is what counts
    }[case]
    status, text = await post(client, form, headers)
    assert status == 403 and '"permission_denied"' in text
    assert fake_llm.records == []
    assert await chats_of(db_url, sender) == []
    assert await unclaimed(db_url, form["MessageSid"])


async def test_without_public_url_the_url_as_requested_is_signed(
    make_client: MakeClient, sender: str
) -> None:
    client = await make_client(PUBLIC_URL="")
    form = delivery(sender, "oi")
    status, text = await post(client, form, sign(form, url=str(client.make_url("/twilio/whatsapp"))))
    assert status == 200 and replies(text) == ["Echo: oi"]
    assert (await post(client, delivery(sender, "oi")))[0] == 403  # signed for PUBLIC: not this server


async def test_a_retried_delivery_runs_no_second_turn(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    form = delivery(sender, "uma vez só")
    assert replies((await post(client, form))[1]) == ["Echo: uma vez só"]
    status, text = await post(client, form)
    assert status == 200 and replies(text) == []
    [chat] = await chats_of(db_url, sender)
    assert [m.content for m in await messages_of(db_url, chat.id)][1:] == [
        "uma vez só",
        "Echo: uma vez só",
    ]
    assert len(fake_llm.records) == 1


async def test_a_retry_while_the_first_delivery_still_runs_on_another_gateway(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> None:
    first, second = await make_client(), await make_client()  # two gateway processes, one database
    fake_llm.behaviour.ttft = 1.0
    form = delivery(sender, "devagar")
    results = await asyncio.gather(post(first, form), post(second, form), post(first, form))
    answers = sorted(replies(text) for _, text in results)
    assert answers == [[], [], ["Echo: devagar"]]
    assert len(fake_llm.records) == 1
    [chat] = await chats_of(db_url, sender)
    assert len(await messages_of(db_url, chat.id)) == 3
    await asyncio.sleep(0.5)
    assert twilio_api.sent == []


async def test_a_slow_answer_is_acknowledged_then_sent_in_order_through_the_rest_api(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> None:
    one = " ".join(f"Primeira parte, frase {i} 🇧🇷." for i in range(40))
    two = " ".join(f"Segunda parte, frase {i} 👍🏽." for i in range(25))
    three = " ".join(f"Fim {i} 👨‍👩‍👧." for i in range(12))
    answer = f"{one}\n\n{two}\n\n{three}"
    assert 800 < units(one) <= 1600 < units(f"{one}\n\n{two}") and units(f"{two}\n\n{three}") <= 1600
    fake_llm.behaviour.reply = lambda messages: answer
    fake_llm.behaviour.ttft = 2.0
    client = await make_client(TWILIO_REPLY_BUDGET_SECONDS="0.5")
    form = delivery(sender, "conte uma história longa")
    status, text = await post(client, form)
    assert status == 200 and replies(text) == []  # acknowledged at once: Twilio gets empty TwiML

    assert await asyncio.to_thread(twilio_api.wait_for, lambda: len(twilio_api.sent) >= 2, 60)
    expected = [one, f"{two}\n\n{three}"]
    assert split_message(answer) == expected
    assert twilio_api.sent == [
        Sent(SID, (SID, AUTH), sender, OUR_NUMBER, part, status_callback=STATUS) for part in expected
    ]
    [chat] = await chats_of(db_url, sender)
    assert (await messages_of(db_url, chat.id))[-1].content == answer

    fake_llm.behaviour.ttft = 0
    assert replies((await post(client, form))[1]) == []  # Twilio retrying the slow one: nothing more
    await asyncio.sleep(0.5)
    assert len(twilio_api.sent) == 2 and len(fake_llm.records) == 1


async def test_an_inline_answer_over_1600_is_split_into_ordered_messages(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM
) -> None:
    answer = " ".join(f"Linha {i}: tudo certo 😀." for i in range(200))
    fake_llm.behaviour.reply = lambda messages: answer
    client = await make_client()
    parts = replies((await post(client, delivery(sender, "longo")))[1])
    assert len(parts) == len(split_message(answer)) > 1
    assert parts == split_message(answer) and " ".join(parts) == answer
    assert all(units(p) <= 1600 for p in parts)


async def test_media_gets_a_polite_text_only_reply_without_the_account(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    client = await make_client(TWILIO_ACCOUNT_SID="")  # media cannot be fetched without it
    form = delivery(
        sender, "", NumMedia="1", MediaUrl0="https://api.twilio.com/media/1", MediaContentType0="image/jpeg"
    )
    assert replies((await post(client, form))[1]) == [MEDIA_REPLY]
    assert replies((await post(client, form))[1]) == []  # a retry is not answered twice
    assert fake_llm.records == [] and await chats_of(db_url, sender) == []


async def test_an_empty_body_is_ignored(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    status, text = await post(client, delivery(sender, "   "))
    assert status == 200 and replies(text) == []
    assert fake_llm.records == [] and await chats_of(db_url, sender) == []


async def test_new_and_novo_start_a_fresh_conversation(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    assert replies((await post(client, delivery(sender, "primeira conversa")))[1]) == [
        "Echo: primeira conversa"
    ]
    assert replies((await post(client, delivery(sender, "/new")))[1]) == [NEW_CHAT_REPLY]
    assert replies((await post(client, delivery(sender, "segunda conversa")))[1]) == [
        "Echo: segunda conversa"
    ]
    assert [m["content"] for m in fake_llm.records[-1].body["messages"]] == [
        "You are a helpful assistant.",
        "segunda conversa",
    ]
    assert replies((await post(client, delivery(sender, "Novo")))[1]) == [NEW_CHAT_REPLY]
    assert replies((await post(client, delivery(sender, "/new")))[1]) == [NEW_CHAT_REPLY]  # nothing to end
    assert replies((await post(client, delivery(sender, "terceira")))[1]) == ["Echo: terceira"]
    chats = await chats_of(db_url, sender)
    assert [(c.id, c.status) for c in chats] == [
        (chat_id_for(sender, 3, KEY), ChatStatus.ACTIVE),
        (chat_id_for(sender, 2, KEY), ChatStatus.ENDED),
        (chat_id_for(sender, 1, KEY), ChatStatus.ENDED),
    ]
    assert len(fake_llm.records) == 3


async def test_a_failed_turn_is_answered_with_an_apology_once(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM
) -> None:
    client = await make_client()
    fake_llm.behaviour.failures.extend([500, 500, 500])
    form = delivery(sender, "oi")
    assert replies((await post(client, form))[1]) == [FAILED_REPLY]
    assert replies((await post(client, form))[1]) == []
    assert replies((await post(client, delivery(sender, "de novo")))[1]) == ["Echo: de novo"]


async def test_the_webhook_needs_the_signature_not_the_token(make_client: MakeClient, sender: str) -> None:
    client = await make_client(AUTH_TOKEN="api-token")
    status, text = await post(client, delivery(sender, "oi"))
    assert status == 200 and replies(text) == ["Echo: oi"]
    assert (await client.post("/chat", json={"user_id": "u", "user_message": "x"})).status == 401


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded; charset=bogus", b"From=x"),
        ("application/x-www-form-urlencoded", b"\xff=1"),
        # A file part used to reach the signature check (TypeError, 500); a broken part header
        # failed the multipart parser (InvalidHeader, 500). Twilio only ever posts url-encoded forms.
        (
            "multipart/form-data; boundary=zzz",
            b'--zzz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nx\r\n--zzz--\r\n',
        ),
        ("multipart/form-data; boundary=zzz", b"--zzz\r\nBroken header\r\n\r\nx\r\n--zzz--\r\n"),
        ("multipart/form-data", b"no boundary"),
        ("application/json", b"{}"),
        ("text/plain", b"From=x"),
    ],
)
async def test_a_body_that_is_not_a_readable_url_encoded_form_is_403(
    make_client: MakeClient, content_type: str, body: bytes
) -> None:
    """Found by the fuzz suite and by hand: such bodies failed the form parser or the check with a 500."""
    client = await make_client()
    for headers in ({"Content-Type": content_type} | sign({}), {"Content-Type": content_type}):
        r = await client.post("/twilio/whatsapp", data=body, headers=headers)
        assert r.status == 403 and (await r.json())["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("name", ["MessageSid", "AccountSid", "From", "To", "Body", "NumMedia"])
async def test_a_signed_delivery_without_a_field_twilio_always_sends_is_400(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM, name: str
) -> None:
    client = await make_client()
    form: dict[str, Any] = delivery(sender, "oi")
    del form[name]
    status, text = await post(client, form)
    assert status == 400 and name in text and fake_llm.records == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MessageSid", "SM" + "0" * 31),
        ("MessageSid", "XX" + "0" * 32),
        ("MessageSid", "SM" + "g" * 32),
        ("MessageSid", "SM" + "0" * 32 + "\n"),
        ("AccountSid", "AC123"),
        ("NumMedia", "one"),
    ],
)
async def test_fields_of_another_shape_are_400(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM, name: str, value: str
) -> None:
    client = await make_client()
    status, text = await post(client, delivery(sender, "oi") | {name: value})
    assert status == 400 and name in text and fake_llm.records == []


async def test_a_delivery_for_another_account_is_403(make_client: MakeClient, sender: str) -> None:
    client = await make_client()
    status, text = await post(client, delivery(sender, "oi", AccountSid="AC" + "f" * 32))
    assert status == 403 and "another Twilio account" in text


async def test_a_captured_delivery_replayed_with_shifted_fields_runs_no_second_turn(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    """The signature joins names and values with no separator: `MessageSid=<sid>NumMedia0` without
    NumMedia signs the same as the original. It used to pass the dedupe as a new message."""
    client = await make_client()
    form = delivery(sender, "só uma vez")
    signature = sign(form)
    assert replies((await post(client, form, signature))[1]) == ["Echo: só uma vez"]
    shifted = {k: v for k, v in form.items() if k != "NumMedia"}
    shifted["MessageSid"] += "NumMedia0"
    assert sign(shifted) == signature  # the attacker needs no key: the captured signature still fits
    status, text = await post(client, shifted, signature)
    assert status == 400 and "MessageSid" in text
    assert len(fake_llm.records) == 1
    [chat] = await chats_of(db_url, sender)
    assert len(await messages_of(db_url, chat.id)) == 3  # the system prompt, one question, one answer


async def test_no_webhook_without_its_token(make_client: MakeClient, sender: str) -> None:
    bare = await make_client(TWILIO_AUTH_TOKEN="")
    assert (await post(bare, delivery(sender, "oi")))[0] == 404


async def test_a_chat_named_by_the_number_before_keys_is_continued(
    make_client: MakeClient, sender: str, db_url: DatabaseURL, fake_llm: FakeLLM
) -> None:
    """Chats made by earlier versions are `wa:<number>:<n>`: their senders keep their conversation."""
    legacy = f"wa:{sender.removeprefix('whatsapp:')}:1"
    store = open_store(db_url)
    try:
        await store.create_chat(ChatRecord(legacy, sender, ChatParams("gpt-4o-mini", 128_000, 1024)), [])
    finally:
        await store.close()
    client = await make_client()
    assert replies((await post(client, delivery(sender, "ainda lembra?")))[1]) == ["Echo: ainda lembra?"]
    assert [c.id for c in await chats_of(db_url, sender)] == [legacy]
    assert replies((await post(client, delivery(sender, "/new")))[1]) == [NEW_CHAT_REPLY]
    assert replies((await post(client, delivery(sender, "e agora")))[1]) == ["Echo: e agora"]
    assert [c.id for c in await chats_of(db_url, sender)] == [chat_id_for(sender, 2, KEY), legacy]


async def test_a_rotated_key_keeps_the_current_chat_and_names_the_next_with_the_new_key(
    make_client: MakeClient, sender: str, db_url: DatabaseURL
) -> None:
    first = await make_client()
    assert replies((await post(first, delivery(sender, "um")))[1]) == ["Echo: um"]
    rotated = await make_client(WHATSAPP_ID_KEY="a-new-key")
    assert replies((await post(rotated, delivery(sender, "dois")))[1]) == ["Echo: dois"]
    assert [c.id for c in await chats_of(db_url, sender)] == [chat_id_for(sender, 1, KEY)]
    assert replies((await post(rotated, delivery(sender, "/new")))[1]) == [NEW_CHAT_REPLY]
    assert replies((await post(rotated, delivery(sender, "três")))[1]) == ["Echo: três"]
    newest = (await chats_of(db_url, sender))[0]
    assert newest.id == chat_id_for(sender, 2, id_key("a-new-key", AUTH)) != chat_id_for(sender, 2, KEY)


async def test_an_invisible_body_is_ignored(make_client: MakeClient, sender: str, fake_llm: FakeLLM) -> None:
    client = await make_client()
    status, text = await post(client, delivery(sender, "\u200b\u200d\ufeff"))
    assert status == 200 and replies(text) == [] and fake_llm.records == []


async def test_when_twilio_hangs_up_before_the_answer_it_is_sent_through_the_rest_api(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> None:
    client = await make_client()  # the default 10 s budget: Twilio gives up first here
    fake_llm.behaviour.ttft = 2.0
    form = delivery(sender, "ainda aí?")
    with pytest.raises(TimeoutError):
        await client.post("/twilio/whatsapp", data=form, headers=sign(form), timeout=ClientTimeout(total=0.5))
    assert await asyncio.to_thread(twilio_api.wait_for, lambda: len(twilio_api.sent) == 1, 60)
    assert twilio_api.sent == [
        Sent(SID, (SID, AUTH), sender, OUR_NUMBER, "Echo: ainda aí?", status_callback=STATUS)
    ]
    assert replies((await post(client, form))[1]) == []  # and its retry is ignored


async def test_a_failed_rest_send_stops_at_that_part_and_the_service_goes_on(
    make_client: MakeClient, sender: str, fake_llm: FakeLLM, twilio_api: FakeTwilio
) -> None:
    fake_llm.behaviour.reply = lambda messages: " ".join(["Uma frase longa o bastante."] * 100)
    fake_llm.behaviour.ttft = 1.0
    twilio_api.failures.append(500)
    client = await make_client(TWILIO_REPLY_BUDGET_SECONDS="0")
    assert replies((await post(client, delivery(sender, "longa")))[1]) == []
    assert await asyncio.to_thread(twilio_api.wait_for, lambda: not twilio_api.failures, 60)
    fake_llm.behaviour.reply = lambda messages: "curta"
    assert replies((await post(client, delivery(sender, "de novo")))[1]) == []
    assert await asyncio.to_thread(twilio_api.wait_for, lambda: len(twilio_api.sent) == 1, 60)
    assert [m.body for m in twilio_api.sent] == ["curta"]  # the failed answer's later parts were not sent
