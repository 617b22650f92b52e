"""REST sends, typing indicators and status callbacks between the real twilio client, the Twilio
stand-in and the status route, recorded in the store (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from gateways.http.middleware import errors
from gateways.whatsapp.callbacks import STATUS_PATH, StatusCallbacks
from gateways.whatsapp.outbox import Answer, Outbox, OutboxSettings, excerpt, while_typing
from gateways.whatsapp.rest import TwilioRest
from store import ChatStore
from store.media import DeliveryStatus, MediaStore, OutboundKind
from tests.conftest import free_port
from tests.twilio_api import FakeTwilio
from tests.twilio_media import status_form

AUTH = "twilio-auth-token-0123456789abcdef"
ACCOUNT = "AC" + "0" * 32
OUR_NUMBER = "whatsapp:+14155238886"
S = DeliveryStatus


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH) as api:
        yield api


@pytest.fixture
def media(store: ChatStore) -> MediaStore:
    return store.media  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
async def status_url(media: MediaStore) -> AsyncIterator[str]:
    """The status route served on its own (as the gateway will mount it), at its public URL."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    app = web.Application(middlewares=[errors])
    app.router.add_post(STATUS_PATH, StatusCallbacks(AUTH, ACCOUNT, public, media).handle)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    yield public + STATUS_PATH
    await server.close()


@pytest.fixture
async def rest(twilio_api: FakeTwilio) -> AsyncIterator[TwilioRest]:
    r = TwilioRest(ACCOUNT, AUTH, twilio_api.base_url, timeout=15.0)
    yield r
    await r.close()


async def inbound(store: ChatStore) -> tuple[str, str]:
    """A sender who just wrote (their 24-hour window is open) and that message's sid."""
    sender, sid = f"whatsapp:+55{uuid.uuid4().int % 10**11:011d}", "SM" + uuid.uuid4().hex
    assert await store.claim_event(sid, sender)
    return sender, sid


async def test_the_typing_indicator_goes_to_twilio_for_the_inbound_message(
    twilio_api: FakeTwilio, rest: TwilioRest
) -> None:
    sid = "SM" + uuid.uuid4().hex
    assert await rest.typing(sid)
    [typing] = twilio_api.typing
    assert (typing.auth, typing.channel, typing.message_id) == ((ACCOUNT, AUTH), "whatsapp", sid)
    assert not await rest.typing("not-a-sid")  # Twilio refuses it: logged, never raised


async def test_typing_shows_only_when_the_answer_is_slow(twilio_api: FakeTwilio, rest: TwilioRest) -> None:
    assert await while_typing(rest, "SM" + "1" * 32, asyncio.sleep(0, "quick"), after=5.0) == "quick"
    assert twilio_api.typing == []
    typed = asyncio.Event()

    async def slow() -> str:
        await asyncio.to_thread(twilio_api.wait_for, lambda: len(twilio_api.typing) == 1)
        typed.set()
        return "slow"

    assert await while_typing(rest, "SM" + "2" * 32, slow(), after=0.05) == "slow"
    assert typed.is_set() and [t.message_id for t in twilio_api.typing] == ["SM" + "2" * 32]


async def test_a_long_answer_goes_out_in_order_and_its_callbacks_are_recorded(
    store: ChatStore,
    media: MediaStore,
    twilio_api: FakeTwilio,
    rest: TwilioRest,
    status_url: str,
    chat_id: str,
) -> None:
    twilio_api.callback_statuses = ["sent", "delivered", "read"]
    sender, reply_to = await inbound(store)
    outbox = Outbox(rest, media, OutboxSettings(None, status_url))
    parts = ("first part", "second part", "third part")
    records = await outbox.deliver(Answer(chat_id, reply_to, sender, OUR_NUMBER, parts))
    assert [m.body for m in twilio_api.sent] == list(parts)
    assert all(m.status_callback == status_url and m.to == sender for m in twilio_api.sent)
    sids = [m.sid for m in twilio_api.sent]
    assert [r.sid for r in records] == sids
    for before, after in itertools.pairwise(sids):  # each part after the previous was sent
        assert twilio_api.log.index(f"callback {before} sent") < twilio_api.log.index(f"create {after}")
    # Each part but the last was waited for until sent; the last one returns as Twilio queued it.
    assert records[-1].status == S.QUEUED and S.QUEUED not in {r.status for r in records[:-1]}
    # In a thread: this loop serves the status route the callbacks go to.
    assert await asyncio.to_thread(twilio_api.wait_for, lambda: len(twilio_api.callbacks) == 12)
    assert {c.status for c in twilio_api.callbacks} == {204}
    stored = await media.outbound_of(chat_id)
    assert [(r.sid, r.part, r.status, r.reply_to) for r in stored] == [
        (sid, i, S.READ, reply_to) for i, sid in enumerate(sids)
    ]


async def test_after_the_24_hour_window_free_text_is_withheld(
    media: MediaStore, twilio_api: FakeTwilio, rest: TwilioRest, status_url: str, chat_id: str
) -> None:
    sender = f"whatsapp:+55{uuid.uuid4().int % 10**11:011d}"  # never wrote: no open window
    outbox = Outbox(rest, media, OutboxSettings(None, status_url))
    records = await outbox.deliver(Answer(chat_id, "SM" + "3" * 32, sender, OUR_NUMBER, ("a", "b")))
    assert twilio_api.sent == []
    assert [(r.status, r.part) for r in records] == [(S.WITHHELD, 0), (S.WITHHELD, 1)]
    assert [r.status for r in await media.outbound_of(chat_id)] == [S.WITHHELD, S.WITHHELD]


async def test_after_the_window_the_template_is_sent_instead(
    media: MediaStore, twilio_api: FakeTwilio, rest: TwilioRest, status_url: str, chat_id: str
) -> None:
    sender = f"whatsapp:+55{uuid.uuid4().int % 10**11:011d}"
    template = "HX" + "a" * 32
    outbox = Outbox(rest, media, OutboxSettings(template, status_url, order_wait_seconds=0.0))
    answer = "Brasília é a capital.\n\nFoi inaugurada em 1960.   Fim."
    records = await outbox.deliver(Answer(chat_id, "SM" + "4" * 32, sender, OUR_NUMBER, (answer, "part two")))
    [sent] = twilio_api.sent
    assert (sent.content_sid, sent.body, sent.status_callback) == (template, "", status_url)
    assert json.loads(sent.content_variables or "") == {"1": excerpt(answer + " part two")}
    assert "\n" not in excerpt(answer) and "   " not in excerpt(answer)
    assert [(r.kind, r.status) for r in records] == [
        (OutboundKind.TEMPLATE, S.QUEUED),
        (OutboundKind.TEXT, S.WITHHELD),
    ]


async def test_twilios_63016_stops_the_answer_and_is_recorded(
    store: ChatStore,
    media: MediaStore,
    twilio_api: FakeTwilio,
    rest: TwilioRest,
    status_url: str,
    chat_id: str,
) -> None:
    sender, reply_to = await inbound(store)  # our record says open; Twilio knows better
    twilio_api.outside_window.add(sender)
    outbox = Outbox(rest, media, OutboxSettings(None, status_url))
    records = await outbox.deliver(Answer(chat_id, reply_to, sender, OUR_NUMBER, ("one", "two", "three")))
    assert [m.body for m in twilio_api.sent] == ["one"]
    assert [(r.status, r.error_code) for r in records] == [
        (S.FAILED, 63016),
        (S.WITHHELD, None),
        (S.WITHHELD, None),
    ]


async def test_a_send_twilio_refuses_at_once_is_recorded_as_failed(
    store: ChatStore, media: MediaStore, twilio_api: FakeTwilio, rest: TwilioRest, chat_id: str
) -> None:
    sender, reply_to = await inbound(store)
    twilio_api.failures = [400]
    records = await Outbox(rest, media, OutboxSettings(None, None)).deliver(
        Answer(chat_id, reply_to, sender, OUR_NUMBER, ("one", "two"))
    )
    assert [(r.sid.startswith("local:"), r.status, r.error_code) for r in records] == [
        (True, S.FAILED, 20500), (True, S.WITHHELD, None),
    ]  # fmt: skip


async def test_status_callbacks_are_trusted_only_when_signed_for_this_account(
    store: ChatStore,
    media: MediaStore,
    twilio_api: FakeTwilio,
    rest: TwilioRest,
    status_url: str,
    chat_id: str,
) -> None:
    sender, reply_to = await inbound(store)
    [record] = await Outbox(rest, media, OutboxSettings(None, None)).deliver(
        Answer(chat_id, reply_to, sender, OUR_NUMBER, ("hello",))
    )
    [sent] = twilio_api.sent
    assert await twilio_api.post_status(status_url, sent, "read") == 204
    good = status_form(ACCOUNT, sent.sid, "sent", sent.to, sent.from_)

    async def post(form: dict[str, str], signature: str | None = None, **kw: object) -> int:
        headers = {} if signature is None else {"X-Twilio-Signature": signature}
        async with aiohttp.ClientSession() as s, s.post(status_url, data=form, headers=headers, **kw) as r:  # type: ignore[arg-type]
            return r.status

    def signed(form: dict[str, str]) -> str:
        return RequestValidator(AUTH).compute_signature(status_url, form)

    assert await post(good) == 403  # unsigned
    assert await post(good, RequestValidator("wrong-token").compute_signature(status_url, good)) == 403
    other = good | {"AccountSid": "AC" + "9" * 32}
    assert await post(other, signed(other)) == 403
    for bad in ({"MessageStatus": "exploded"}, {"MessageSid": "SM123"}, {"ErrorCode": "63016; DROP"}):
        form = good | bad
        assert await post(form, signed(form)) == 400
    assert await post(good, signed(good)) == 204  # a late, replayed `sent`: accepted, changes nothing
    stored = await media.delivery(record.sid)
    assert stored is not None and stored.status is S.READ and stored.chat_id == chat_id
