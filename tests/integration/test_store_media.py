"""The MediaStore contract on SQLite and MariaDB: media tied to messages, delivery status in order."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from store import ChatStore
from store.errors import AlreadyExists, InvalidArgument
from store.media import (
    DeliveryStatus,
    MediaKind,
    MediaRecord,
    MediaStore,
    OutboundKind,
    OutboundRecord,
)
from store.records import ChatParams, ChatRecord, MessageRecord, Role, utcnow

PARAMS = ChatParams(model="gpt-4o", context_tokens=128_000, max_tokens=1024)
S = DeliveryStatus


def media_of(store: ChatStore) -> MediaStore:
    return store.media  # type: ignore[attr-defined,no-any-return]


def image(chat_id: str, turn_id: str, data: bytes, **kw: object) -> MediaRecord:
    return MediaRecord(
        id="ME" + uuid.uuid4().hex, chat_id=chat_id, turn_id=turn_id, kind=MediaKind.IMAGE,
        content_type="image/jpeg", size=len(data), data=data, width=1600, height=1200, tokens=765,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def chat_with_user_message(store: ChatStore, chat_id: str, turn_id: str) -> None:
    await store.create_chat(
        ChatRecord(chat_id, "whatsapp:+5511999990000", PARAMS),
        [
            MessageRecord(chat_id, 1, Role.SYSTEM, "Be brief.", 3),
            MessageRecord(chat_id, 2, Role.USER, "what is this?", 770, turn_id=turn_id),
        ],
    )


async def test_an_image_is_stored_byte_for_byte_and_found_by_its_message(
    store: ChatStore, chat_id: str
) -> None:
    media = media_of(store)
    data = bytes(range(256)) * 4096 + b"\x00end"  # 1 MiB with every byte value and a NUL
    first, second = image(chat_id, "t1", data), image(chat_id, "t1", b"\xff\xd8second")
    await chat_with_user_message(store, chat_id, "t1")
    await media.add_media([first, second])
    assert await media.media_for(chat_id, [2]) == {}  # not yet tied to the message
    assert await media.attach_media(chat_id, [first.id, second.id], 2) == 2
    found = await media.media_for(chat_id, [1, 2, 3])
    assert list(found) == [2]
    assert found[2] == sorted([replace(first, seq=2), replace(second, seq=2)], key=lambda m: m.id)


async def test_a_voice_note_keeps_its_transcript_and_no_bytes(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    await chat_with_user_message(store, chat_id, "t1")
    voice = MediaRecord(
        "ME" + uuid.uuid4().hex, chat_id, "t1", MediaKind.VOICE, "audio/ogg", 5_321,
        transcript="Qual é a capital do Brasil? 🇧🇷",
    )  # fmt: skip
    await media.add_media([voice])
    await media.attach_media(chat_id, [voice.id], 2)
    [stored] = (await media.media_for(chat_id, [2]))[2]
    assert (stored.kind, stored.data, stored.transcript, stored.content_type) == (
        MediaKind.VOICE, None, "Qual é a capital do Brasil? 🇧🇷", "audio/ogg",
    )  # fmt: skip


async def test_a_withdrawn_turns_image_never_shows_on_the_message_that_takes_its_seq(
    store: ChatStore, chat_id: str
) -> None:
    media = media_of(store)
    await chat_with_user_message(store, chat_id, "t1")
    old = image(chat_id, "t1", b"old")
    await media.add_media([old])
    await media.attach_media(chat_id, [old.id], 2)
    await store.write(chat_id, 0, remove=[2])  # the turn was withdrawn
    await store.write(
        chat_id, 1, append=[MessageRecord(chat_id, 2, Role.USER, "hi", 2, turn_id="t2", parent_seq=1)]
    )
    assert await media.media_for(chat_id, [2]) == {}
    assert await media.drop_media(chat_id, "t1") == 1
    assert await media.drop_media(chat_id, "t1") == 0


async def test_a_batch_with_a_taken_id_stores_none_of_it(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    await chat_with_user_message(store, chat_id, "t1")
    taken = image(chat_id, "t1", b"one")
    await media.add_media([taken])
    fresh = image(chat_id, "t1", b"two")
    with pytest.raises(AlreadyExists):
        await media.add_media([fresh, taken])
    await media.attach_media(chat_id, [taken.id, fresh.id], 2)
    assert [m.id for m in (await media.media_for(chat_id, [2]))[2]] == [taken.id]
    with pytest.raises(InvalidArgument):
        await media.add_media([image(chat_id, "t" * 65, b"x")])


async def test_deleting_a_chat_deletes_its_media_and_outbound_records(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    await chat_with_user_message(store, chat_id, "t1")
    kept = image(chat_id, "t1", b"img")
    await media.add_media([kept])
    sid = "SM" + uuid.uuid4().hex
    await media.record_sent(OutboundRecord(sid, chat_id, "SM" + "1" * 32, 0, OutboundKind.TEXT, S.QUEUED))
    assert await store.delete_chat(chat_id)
    assert await media.drop_media(chat_id, "t1") == 0
    assert await media.delivery(sid) is None and await media.outbound_of(chat_id) == []


async def test_callbacks_in_any_order_never_move_a_message_back(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    sid = "SM" + uuid.uuid4().hex
    sent = await media.record_sent(
        OutboundRecord(sid, chat_id, "SM" + "a" * 32, 0, OutboundKind.TEXT, S.QUEUED)
    )
    assert sent.status is S.QUEUED
    for status, expected in [
        (S.DELIVERED, S.DELIVERED),
        (S.SENT, S.DELIVERED),  # an older callback, late
        (S.READ, S.READ),
        (S.SENT, S.READ),  # never from read back to sent
        (S.FAILED, S.READ),  # nor to a failure: read is final
    ]:
        assert (await media.record_status(sid, status, None)).status is expected
    stored = await media.delivery(sid)
    assert stored is not None and (stored.chat_id, stored.part, stored.error_code) == (chat_id, 0, None)


async def test_a_failure_keeps_twilios_error_code(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    sid = "SM" + uuid.uuid4().hex
    await media.record_sent(OutboundRecord(sid, chat_id, "SM" + "b" * 32, 1, OutboundKind.TEXT, S.QUEUED))
    assert (await media.record_status(sid, S.SENT, None)).status is S.SENT
    failed = await media.record_status(sid, S.UNDELIVERED, 63016)
    assert (failed.status, failed.error_code, failed.chat_id) == (S.UNDELIVERED, 63016, chat_id)
    assert (await media.record_status(sid, S.DELIVERED, None)).status is S.UNDELIVERED


async def test_a_callback_that_beats_its_send_is_kept_and_completed(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    sid = "SM" + uuid.uuid4().hex
    early = await media.record_status(sid, S.SENT, None)
    assert (early.status, early.chat_id) == (S.SENT, None)
    stored = await media.record_sent(
        OutboundRecord(sid, chat_id, "SM" + "c" * 32, 2, OutboundKind.TEMPLATE, S.QUEUED)
    )
    assert (stored.status, stored.chat_id, stored.part, stored.kind) == (
        S.SENT,
        chat_id,
        2,
        OutboundKind.TEMPLATE,
    )


async def test_racing_callbacks_end_at_the_furthest_status(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    sids = ["SM" + uuid.uuid4().hex for _ in range(4)]
    for sid in sids:
        await media.record_sent(OutboundRecord(sid, chat_id, "SM" + "d" * 32, 0, OutboundKind.TEXT, S.QUEUED))
    statuses = [S.SENT, S.READ, S.DELIVERED, S.SENDING]
    await asyncio.gather(*(media.record_status(sid, s, None) for sid in sids for s in statuses))
    assert [(await media.delivery(sid)).status for sid in sids] == [S.READ] * 4  # type: ignore[union-attr]


async def test_a_chats_parts_are_listed_in_order(store: ChatStore, chat_id: str) -> None:
    media = media_of(store)
    reply_to = "SM" + "e" * 32
    base = utcnow()
    for part in (0, 1, 2):
        sid = "SM" + uuid.uuid4().hex
        at = base + timedelta(milliseconds=part)
        await media.record_sent(
            OutboundRecord(sid, chat_id, reply_to, part, OutboundKind.TEXT, S.QUEUED, None, at, at)
        )
    withheld = OutboundRecord(
        "local:" + uuid.uuid4().hex, chat_id, "SM" + "f" * 32, 0, OutboundKind.TEXT, S.WITHHELD
    )
    await media.record_sent(withheld)
    listed = await media.outbound_of(chat_id)
    assert [(r.reply_to, r.part) for r in listed] == [
        (reply_to, 0),
        (reply_to, 1),
        (reply_to, 2),
        (withheld.reply_to, 0),
    ]
    assert (await media.record_status(withheld.sid, S.SENT, None)).status is S.WITHHELD


async def test_the_last_inbound_message_of_a_sender(store: ChatStore) -> None:
    media = media_of(store)
    sender = f"whatsapp:+55{uuid.uuid4().int % 10**11:011d}"
    assert await media.last_inbound(sender) is None
    before = utcnow()
    assert await store.claim_event("SM" + uuid.uuid4().hex, sender)
    await asyncio.sleep(0.01)
    assert await store.claim_event("SM" + uuid.uuid4().hex, sender)
    last = await media.last_inbound(sender)
    assert last is not None and last >= before
    assert await media.last_inbound(sender + " ") is None  # MySQL pads: only the exact sender counts
