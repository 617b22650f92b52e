"""The served webhook with media: signed deliveries through the real HTTP app, Ray and MariaDB.

Twilio is the local stand-in (media with auth and a redirect, typing, REST sends, signed status
callbacks posted back to the app's own PUBLIC_URL); the LLM and its transcription route the test
server. The voice-note exchange is written, as the stand-ins recorded it, to
artifacts/whatsapp/voice-note-exchange.txt.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from gateways.http.app import create_app
from gateways.serve import build_runtime
from gateways.settings import Settings
from gateways.whatsapp import replies
from gateways.whatsapp.images import image_tokens
from store import DatabaseURL, open_store
from store.media import DeliveryStatus, MediaKind, MediaStore
from store.records import MessageRecord, Role
from tests.conftest import free_port, repo_root
from tests.http_support import base_env
from tests.integration.test_twilio_webhook import delivery
from tests.integration.test_twilio_webhook import replies as replies_of
from tests.llm_server import Behaviour, FakeLLM
from tests.media_files import image, voice_note
from tests.twilio_api import FakeTwilio
from tests.twilio_media import post_callback, status_form

AUTH = "twilio-auth-token-0123456789abcdef"
SID = "AC" + "0" * 32
SAID = "Qual é a capital do Brasil?"
Client = TestClient  # type: ignore[type-arg]
Make = Callable[..., Coroutine[Any, Any, tuple[Client, str]]]


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH) as api:
        api.callback_statuses = ["sent", "delivered", "read"]
        yield api


@pytest.fixture
async def make(db_url: DatabaseURL, fake_llm: FakeLLM, twilio_api: FakeTwilio) -> AsyncIterator[Make]:
    """`make(**env)`: the real app on a port of its own, PUBLIC_URL its address (callbacks reach it)."""
    made: list[tuple[Client, Any]] = []
    fake_llm.transcriptions.clear()  # the session's server: earlier tests' notes are not ours

    async def start(**env: str) -> tuple[Client, str]:
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        settings = Settings.from_env(base_env(db_url, fake_llm) | {
            "TWILIO_AUTH_TOKEN": AUTH, "TWILIO_ACCOUNT_SID": SID, "PUBLIC_URL": public,
            "TWILIO_API_BASE_URL": twilio_api.base_url, "WHATSAPP_DEBOUNCE_MS": "0",
        } | env)  # fmt: skip
        runtime = build_runtime(settings, in_process=True)
        client = TestClient(TestServer(create_app(settings, runtime.service, runtime.readiness), port=port))
        await client.start_server()
        made.append((client, runtime))
        return client, public

    yield start
    for client, runtime in made:
        await client.close()
        await runtime.close()


@pytest.fixture
def sender() -> str:
    return f"whatsapp:+5521{random.randrange(10**8, 10**9)}"


async def post(client: Client, public: str, form: dict[str, str]) -> tuple[int, list[str]]:
    signature = RequestValidator(AUTH).compute_signature(public + "/twilio/whatsapp", form)
    r = await client.post("/twilio/whatsapp", data=form, headers={"X-Twilio-Signature": signature})
    text = await r.text()
    return r.status, replies_of(text) if r.status == 200 else []


def media_form(sender: str, url: str, kind: str, body: str = "", **extra: str) -> dict[str, str]:
    form = delivery(sender, body, NumMedia="1", MediaUrl0=url, MediaContentType0=kind, **extra)
    form["MessageSid"] = form["SmsMessageSid"] = "MM" + uuid.uuid4().hex
    return form


async def stored(db: DatabaseURL, sender: str) -> tuple[str, list[MessageRecord], MediaStore, Any]:
    store = open_store(db)
    chats = await store.list_chats(sender, 10)
    if not chats:
        return "", [], store.media, store  # type: ignore[attr-defined]
    said = [m for m in await store.list_messages(chats[0].id) if m.role in (Role.USER, Role.ASSISTANT)]
    return chats[0].id, said, store.media, store  # type: ignore[attr-defined]


async def answer(api: FakeTwilio, client: Client, public: str, form: dict[str, str]) -> list[str]:
    """The reply to a delivery: inline, or (on a machine slow enough to miss the budget) sent later."""
    before = len(api.sent)
    status, inline = await post(client, public, form)
    assert status == 200
    if inline:
        return inline
    await until(api, lambda: len(api.sent) > before)
    return [s.body for s in api.sent[before:]]


async def until(api: FakeTwilio, predicate: Callable[[], bool]) -> None:
    assert await asyncio.to_thread(api.wait_for, predicate, 60)


async def test_a_voice_note_is_heard_answered_late_in_order_and_its_delivery_recorded(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    fake_llm.behaviour.ttft = 1.5  # slower than a second: typing shows; than the budget: sent late
    client, public = await make(TWILIO_REPLY_BUDGET_SECONDS="0.5")
    form = media_form(sender, "", "audio/ogg")
    form["MediaUrl0"] = twilio_api.add_media(
        SID, "audio/ogg", voice_note(3.0, SAID), message=form["MessageSid"]
    )
    assert await post(client, public, form) == (200, [])
    await until(twilio_api, lambda: len(twilio_api.callbacks) == 4)  # queued, sent, delivered, read
    assert await post(client, public, form) == (200, [])  # Twilio's retry: no second turn
    chat_id, messages, media, store = await stored(db_url, sender)
    try:
        assert [(m.role, m.content) for m in messages] == [
            (Role.USER, SAID),
            (Role.ASSISTANT, f"Echo: {SAID}"),
        ]
        [[note]] = (await media.media_for(chat_id, [messages[0].seq])).values()
        assert (note.kind, note.transcript, note.content_type, note.data) == (
            MediaKind.VOICE,
            SAID,
            "audio/ogg",
            None,
        )
        [sent] = twilio_api.sent
        assert (sent.to, sent.body, sent.status_callback) == (
            sender,
            f"Echo: {SAID}",
            public + "/twilio/whatsapp/status",
        )
        assert all(c.status == 204 for c in twilio_api.callbacks)
        record = await media.delivery(sent.sid)
        assert record is not None and (record.status, record.chat_id, record.reply_to) == (
            DeliveryStatus.READ,
            chat_id,
            form["MessageSid"],
        )
        assert [t.message_id for t in twilio_api.typing][:1] == [form["MessageSid"]]
        assert len(fake_llm.transcriptions) == 1 and len(fake_llm.records) == 1
    finally:
        await store.close()
    write_transcript(twilio_api, fake_llm, form, SAID)


async def test_a_voice_note_no_one_can_transcribe_gets_a_reply_that_says_so_and_nothing_is_stored(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    offline, public = await make(OPENAI_API_KEY="")  # the offline responder, and no transcription
    form = media_form(sender, "", "audio/ogg")
    form["MediaUrl0"] = twilio_api.add_media(
        SID, "audio/ogg", voice_note(2.0, SAID), message=form["MessageSid"]
    )
    assert await answer(twilio_api, offline, public, form) == [replies.CANNOT_TRANSCRIBE]
    assert fake_llm.transcriptions == [] and (await stored(db_url, sender))[0] == ""

    failing, public = await make()
    fake_llm.behaviour = Behaviour(transcription_failures=collections.deque([500] * 3))  # and 2 retries
    form = media_form(sender, "", "audio/ogg")
    form["MediaUrl0"] = twilio_api.add_media(
        SID, "audio/ogg", voice_note(2.0, SAID), message=form["MessageSid"]
    )
    assert await answer(twilio_api, failing, public, form) == [replies.TRANSCRIBE_FAILED]
    assert not fake_llm.behaviour.transcription_failures and fake_llm.records == []
    assert (await stored(db_url, sender))[0] == ""  # no turn: the sender is asked to send it again


async def test_status_callbacks_are_signed_and_never_move_backwards(
    make: Make, twilio_api: FakeTwilio, db_url: DatabaseURL, sender: str
) -> None:
    client, public = await make(TWILIO_REPLY_BUDGET_SECONDS="0.01")
    twilio_api.callback_statuses = ["sent", "read"]
    assert await post(client, public, delivery(sender, "oi")) == (200, [])
    await until(twilio_api, lambda: len(twilio_api.callbacks) == 3)
    [sent] = twilio_api.sent
    url = public + "/twilio/whatsapp/status"
    late = status_form(SID, sent.sid, "delivered", sender, sent.from_)
    async with aiohttp.ClientSession() as session:
        assert await post_callback(session, AUTH, url, late) == 204  # after read: ignored
        assert await post_callback(session, AUTH, url, late) == 204  # replayed: ignored again
        assert await post_callback(session, "another-token", url, status_form(
            SID, sent.sid, "failed", sender, sent.from_, 30008)) == 403  # fmt: skip
        async with session.post(url, data=late) as r:
            assert r.status == 403  # unsigned
        assert await post_callback(session, AUTH, url, status_form(
            "AC" + "1" * 32, sent.sid, "failed", sender, sent.from_)) == 403  # another account  # fmt: skip
        unknown = "SM" + uuid.uuid4().hex
        assert (
            await post_callback(session, AUTH, url, status_form(SID, unknown, "bogus", sender, sent.from_))
            == 400
        )
        assert (
            await post_callback(
                session, AUTH, url, status_form(SID, unknown, "delivered", sender, sent.from_)
            )
            == 204
        )
    chat_id, _, media, store = await stored(db_url, sender)
    try:
        record = await media.delivery(sent.sid)
        assert record is not None and (record.status, record.error_code, record.chat_id) == (
            DeliveryStatus.READ,
            None,
            chat_id,
        )
        stray = await media.delivery(unknown)  # kept for a send that may yet be recorded; tied to no chat
        assert stray is not None and stray.chat_id is None
    finally:
        await store.close()


async def test_an_image_is_seen_by_a_vision_model_and_refused_for_another(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    photo = image("png", 1024, 768)
    client, public = await make(MODEL="gpt-4o-mini")
    form = media_form(sender, "", "image/png", body="O que é isto?")
    form["MediaUrl0"] = twilio_api.add_media(SID, "image/png", photo, message=form["MessageSid"])
    assert await answer(twilio_api, client, public, form) == ["Echo: O que é isto?"]
    content = fake_llm.records[-1].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "O que é isto?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,") and len(content) == 2
    chat_id, messages, media, store = await stored(db_url, sender)
    try:
        question = messages[0]
        [[kept]] = (await media.media_for(chat_id, [question.seq])).values()
        cost = image_tokens("gpt-4o-mini", 1024, 768, "high", 1000)
        assert (kept.kind, kept.data, kept.tokens, kept.width) == (MediaKind.IMAGE, photo, cost, 1024)
        assert question.content == "O que é isto?" and question.tokens > cost  # the window counts it
    finally:
        await store.close()
    # A later text turn still shows the model the image it asks about, from the media table.
    assert await answer(twilio_api, client, public, delivery(sender, "E a cor?")) == ["Echo: E a cor?"]
    sent = [m for m in fake_llm.records[-1].body["messages"] if m["role"] == "user"]
    assert sent[0]["content"] == content and sent[-1]["content"] == "E a cor?"

    blind, public = await make(MODEL="gpt-4o-mini", VISION="off")
    other = f"whatsapp:+5531{random.randrange(10**8, 10**9)}"
    form = media_form(other, "", "image/png", body="e isto?")
    form["MediaUrl0"] = twilio_api.add_media(SID, "image/png", photo, message=form["MessageSid"])
    fetched = len(twilio_api.media.requests)
    assert await answer(twilio_api, blind, public, form) == [replies.CANNOT_SEE_IMAGES]
    assert len(twilio_api.media.requests) == fetched  # not even fetched
    assert (await stored(db_url, other))[0] == ""  # nothing stored


async def test_a_prompt_shrunk_for_a_retry_still_shows_the_image(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, sender: str
) -> None:
    client, public = await make(MODEL="gpt-4o-mini")
    for text in ("primeira pergunta", "segunda pergunta"):  # a history the shrink can evict
        assert await answer(twilio_api, client, public, delivery(sender, text)) == [f"Echo: {text}"]
    photo = image("png", 512, 512)
    form = media_form(sender, "", "image/png", body="O que é isto?")
    form["MediaUrl0"] = twilio_api.add_media(SID, "image/png", photo, message=form["MessageSid"])
    fake_llm.behaviour = Behaviour(failures=collections.deque(["overflow:0"]))  # refused as too large
    assert await answer(twilio_api, client, public, form) == ["Echo: O que é isto?"]
    refused, retry = fake_llm.records[-2:]
    assert refused.fate == "overflow:0" and retry.finished
    assert len(retry.body["messages"]) < len(refused.body["messages"])  # older messages evicted
    content = retry.body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "O que é isto?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_burst_of_three_is_one_turn_and_one_answer(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    client, public = await make(WHATSAPP_DEBOUNCE_MS="400")
    forms = [delivery(sender, text) for text in ("oi", "uma pergunta", "qual é a capital do Brasil?")]
    for form in forms:
        assert await post(client, public, form) == (200, [])
    await until(twilio_api, lambda: len(twilio_api.callbacks) == 4)
    for form in forms:
        assert await post(client, public, form) == (200, [])  # retries of any of them: nothing more
    said = [form["Body"] for form in forms]
    answer = f"Echo: {said[-1]}"
    assert [s.body for s in twilio_api.sent] == [answer] and len(fake_llm.records) == 1
    assert [m["content"] for m in fake_llm.records[0].body["messages"] if m["role"] == "user"] == said
    chat_id, messages, media, store = await stored(db_url, sender)
    try:
        assert [m.content for m in messages] == [*said, answer]  # every message, in order, one answer
        [part] = await media.outbound_of(chat_id)
        assert (part.reply_to, part.status) == (forms[-1]["MessageSid"], DeliveryStatus.READ)
    finally:
        await store.close()


async def test_a_photo_inside_a_burst_is_answered_alone_between_the_text_around_it(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    client, public = await make(MODEL="gpt-4o-mini", WHATSAPP_DEBOUNCE_MS="400")
    photo = media_form(sender, "", "image/png", body="e isto?")
    photo["MediaUrl0"] = twilio_api.add_media(
        SID, "image/png", image("png", 256, 256), message=photo["MessageSid"]
    )
    burst = [delivery(sender, "oi"), delivery(sender, "uma pergunta"), photo, delivery(sender, "e agora?")]
    for form in burst:
        assert await post(client, public, form) == (200, [])
    await until(twilio_api, lambda: len(twilio_api.sent) == 3)
    assert [s.body for s in twilio_api.sent] == ["Echo: uma pergunta", "Echo: e isto?", "Echo: e agora?"]
    asked = [r.body["messages"][-1]["content"] for r in fake_llm.records]
    assert asked[0] == "uma pergunta" and asked[2] == "e agora?"
    assert [p["type"] for p in asked[1]] == ["text", "image_url"]  # the photo, with its caption
    chat_id, messages, media, store = await stored(db_url, sender)
    try:
        assert [m.content for m in messages] == [
            "oi", "uma pergunta", "Echo: uma pergunta", "e isto?", "Echo: e isto?", "e agora?", "Echo: e agora?",
        ]  # fmt: skip
        assert [r.reply_to for r in await media.outbound_of(chat_id)] == [
            burst[1]["MessageSid"], photo["MessageSid"], burst[3]["MessageSid"],
        ]  # fmt: skip
    finally:
        await store.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"NumMedia": "1"},  # no MediaUrl0
        {"NumMedia": "0", "MediaUrl0": "x", "MediaContentType0": "image/png"},
        {"NumMedia": "1", "MediaUrl0": "x", "MediaContentType0": "image/png", "MediaUrl1": "y"},
        {"NumMedia": "11"},
    ],
)
async def test_media_fields_that_disagree_with_num_media_are_400(
    make: Make, db_url: DatabaseURL, fake_llm: FakeLLM, sender: str, fields: dict[str, str]
) -> None:
    client, public = await make()
    status, _ = await post(client, public, delivery(sender, "oi") | fields)
    assert status == 400 and fake_llm.records == [] and (await stored(db_url, sender))[0] == ""


async def test_media_off_this_account_private_too_large_or_too_long_is_refused_and_nothing_stored(
    make: Make, twilio_api: FakeTwilio, fake_llm: FakeLLM, db_url: DatabaseURL, sender: str
) -> None:
    client, public = await make()
    base = twilio_api.base_url + "/2010-04-01/Accounts/"
    mm, me = "MM" + uuid.uuid4().hex, "ME" + uuid.uuid4().hex
    off_account = media_form(sender, f"{base}AC{'1' * 32}/Messages/{mm}/Media/{me}", "audio/ogg")
    metadata = media_form(sender, "http://169.254.169.254/latest/meta-data", "image/png")
    assert await answer(twilio_api, client, public, off_account) == [replies.FETCH_FAILED]
    assert await answer(twilio_api, client, public, metadata) == [replies.FETCH_FAILED]
    assert twilio_api.media.requests == []  # neither was fetched

    huge = media_form(sender, "", "audio/ogg")
    huge["MediaUrl0"] = twilio_api.add_media(SID, "audio/ogg", b"x" * 64, declared_length=1 << 40)
    assert await answer(twilio_api, client, public, huge) == [replies.AUDIO_TOO_LARGE]
    long = media_form(sender, "", "audio/ogg")
    long["MediaUrl0"] = twilio_api.add_media(SID, "audio/ogg", voice_note(301.0, SAID))
    assert await answer(twilio_api, client, public, long) == [replies.AUDIO_TOO_LONG.format(limit="5 min")]
    twilio_api.media.redirect_to = "http://192.168.0.1/media"  # the redirect to a private address
    private = media_form(sender, "", "image/png")
    private["MediaUrl0"] = twilio_api.add_media(SID, "image/png", image("png", 8, 8))
    assert await answer(twilio_api, client, public, private) == [replies.FETCH_FAILED]
    assert [r.host for r in twilio_api.media.requests] == ["api", "storage", "api", "storage", "api"]
    assert fake_llm.records == [] and fake_llm.transcriptions == []
    assert (await stored(db_url, sender))[0] == ""


def write_transcript(api: FakeTwilio, llm: FakeLLM, form: dict[str, str], heard: str) -> None:
    lines = [f"webhook  POST /twilio/whatsapp MessageSid={form['MessageSid']} From={form['From']} "
             f"NumMedia=1 MediaContentType0={form['MediaContentType0']} (signed) -> 200, empty TwiML"]  # fmt: skip
    for r in api.media.requests:
        auth = "Basic <account sid:auth token>" if r.authorization else "no Authorization header"
        lines.append(f"GET      {r.host:8} {r.path}  ({auth})")
    for t in llm.transcriptions:
        lines.append(f"POST     /v1/audio/transcriptions model={t.model} file={t.filename} ({t.content_type}, "
                     f"{t.size} bytes) response_format={t.response_format} -> {heard!r}")  # fmt: skip
    for t in api.typing:
        lines.append(f"POST     /v2/Indicators/Typing.json channel={t.channel} messageId={t.message_id}")
    for m in api.sent:
        lines.append(f"POST     Messages.json To={m.to} From={m.from_} Body={m.body!r} "
                     f"StatusCallback={m.status_callback} -> {m.sid}")  # fmt: skip
    for c in api.callbacks:
        fields = " ".join(
            f"{k}={v}" for k, v in c.form.items() if k in ("MessageSid", "MessageStatus", "ErrorCode")
        )
        lines.append(f"callback {fields} -> {c.status}")
    out = repo_root() / "artifacts" / "whatsapp"
    out.mkdir(parents=True, exist_ok=True)
    Path(out / "voice-note-exchange.txt").write_text("\n".join(lines) + "\n")
