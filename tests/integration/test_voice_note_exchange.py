"""A voice-note exchange end to end through the parts, as the webhook will run it: the stand-in's
media URL, the transcription route, the LLM, typing, an ordered REST answer and its callbacks.

It writes the exchange as the stand-ins recorded it to artifacts/whatsapp/voice-note-exchange.txt.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateways.http.middleware import errors
from gateways.whatsapp_media import replies
from gateways.whatsapp_media.callbacks import STATUS_PATH, StatusCallbacks
from gateways.whatsapp_media.fetch import MediaFetcher
from gateways.whatsapp_media.outbox import Answer, Outbox, OutboxSettings, while_typing
from gateways.whatsapp_media.rest import TwilioRest
from gateways.whatsapp_media.transcribe import AUDIO_TYPES, OpenAITranscriber, check_duration
from store import ChatStore
from store.media import DeliveryStatus, MediaKind, MediaRecord, MediaStore
from store.records import ChatParams, ChatRecord, MessageRecord, Role
from tests.conftest import free_port, repo_root
from tests.llm_server import Behaviour, FakeLLM
from tests.media_files import voice_note
from tests.twilio_api import FakeTwilio

AUTH = "twilio-auth-token-0123456789abcdef"
ACCOUNT = "AC" + "0" * 32
OUR_NUMBER = "whatsapp:+14155238886"
SAID = "Qual é a capital do Brasil?"


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH) as api:
        api.callback_statuses = ["sent", "delivered", "read"]
        yield api


@pytest.fixture
async def public_url(store: ChatStore) -> AsyncIterator[str]:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    app = web.Application(middlewares=[errors])
    app.router.add_post(STATUS_PATH, StatusCallbacks(AUTH, ACCOUNT, public, store.media).handle)  # type: ignore[attr-defined]
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    yield public
    await server.close()


async def test_a_voice_note_is_fetched_transcribed_answered_and_delivered(
    store: ChatStore, fake_llm: FakeLLM, twilio_api: FakeTwilio, public_url: str, chat_id: str
) -> None:
    media: MediaStore = store.media  # type: ignore[attr-defined]
    fake_llm.behaviour = Behaviour(ttft=1.5)  # an answer slower than a second: typing shows
    fake_llm.transcriptions.clear()
    sender, inbound = f"whatsapp:+55{uuid.uuid4().int % 10**11:011d}", "MM" + uuid.uuid4().hex
    note = voice_note(3.0, SAID)
    media_url = twilio_api.add_media(ACCOUNT, "audio/ogg", note, message=inbound)
    assert await store.claim_event(inbound, sender)  # the webhook's claim: the window opens

    fetcher = MediaFetcher(twilio_api.base_url, ACCOUNT, AUTH)
    transcriber = OpenAITranscriber("k", fake_llm.base_url, "whisper-1", max_retries=0)
    rest = TwilioRest(ACCOUNT, AUTH, twilio_api.base_url)
    try:
        fetched = await fetcher.fetch(media_url, AUDIO_TYPES, 16 << 20, replies.AUDIO_TOO_LARGE)
        check_duration(fetched.data, 300.0)
        text = await transcriber.transcribe(fetched.data, fetched.content_type)
        turn = "turn-" + uuid.uuid4().hex[:8]
        spoken = MediaRecord("ME" + uuid.uuid4().hex, chat_id, turn, MediaKind.VOICE, fetched.content_type,
                             len(fetched.data), transcript=text)  # fmt: skip
        await store.create_chat(ChatRecord(chat_id, sender, ChatParams("gpt-4o-mini", 128_000, 256)), [])
        await media.add_media([spoken])
        await store.write(chat_id, 0, append=[MessageRecord(chat_id, 1, Role.USER, text, 9, turn_id=turn)])
        await media.attach_media(chat_id, [spoken.id], 1)

        async def ask() -> str:
            async with openai.AsyncOpenAI(api_key="k", base_url=fake_llm.base_url, max_retries=0) as client:
                reply = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
                )
            return reply.choices[0].message.content or ""

        answer = await while_typing(rest, inbound, ask(), after=1.0)
        outbox = Outbox(rest, media, OutboxSettings(None, public_url + STATUS_PATH))
        [part] = await outbox.deliver(Answer(chat_id, inbound, sender, OUR_NUMBER, (answer,)))
        assert twilio_api.wait_for(lambda: len(twilio_api.callbacks) == 4)
    finally:
        await fetcher.close()
        await transcriber.close()
        await rest.close()

    assert text == SAID and answer == f"Echo: {SAID}"
    assert [t.message_id for t in twilio_api.typing][:1] == [inbound]
    [sent] = twilio_api.sent
    assert (sent.to, sent.from_, sent.body, sent.sid) == (sender, OUR_NUMBER, answer, part.sid)
    stored = await media.delivery(part.sid)
    assert stored is not None and stored.status is DeliveryStatus.READ
    [[kept]] = (await media.media_for(chat_id, [1])).values()
    assert (kept.kind, kept.transcript, kept.content_type, kept.data) == (
        MediaKind.VOICE,
        SAID,
        "audio/ogg",
        None,
    )
    write_transcript(twilio_api, fake_llm, sender, inbound, text)


def write_transcript(api: FakeTwilio, llm: FakeLLM, sender: str, inbound: str, heard: str) -> None:
    lines = [f"inbound  {inbound} From={sender} NumMedia=1 MediaContentType0=audio/ogg"]
    for r in api.media.requests:
        auth = "Basic <account sid:auth token>" if r.authorization else "no Authorization header"
        lines.append(f"GET      {r.host:8} {r.path}  ({auth})")
    for t in llm.transcriptions:
        lines.append(f"POST     /v1/audio/transcriptions model={t.model} file={t.filename} ({t.content_type}, "
                     f"{t.size} bytes) response_format={t.response_format} -> {heard!r}")  # fmt: skip
    for t in api.typing:
        lines.append(f"POST     /v2/Indicators/Typing.json channel={t.channel} messageId={t.message_id}")
    for m in api.sent:
        lines.append(
            f"POST     Messages.json To={m.to} From={m.from_} Body={m.body!r} StatusCallback={m.status_callback} -> {m.sid}"
        )
    for c in api.callbacks:
        fields = " ".join(
            f"{k}={v}"
            for k, v in c.form.items()
            if k in ("MessageSid", "MessageStatus", "EventType", "ErrorCode")
        )
        lines.append(f"callback {fields} -> {c.status}")
    out = repo_root() / "artifacts" / "whatsapp"
    out.mkdir(parents=True, exist_ok=True)
    Path(out / "voice-note-exchange.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
