"""MediaStore over any SQL database driver (the same adapters and %s queries as SqlChatStore)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from store.errors import AlreadyExists, InvalidArgument
from store.media import (
    DeliveryStatus,
    MediaKind,
    MediaRecord,
    OutboundKind,
    OutboundRecord,
    replaceable_by,
)
from store.records import utcnow
from store.rows import placeholders

if TYPE_CHECKING:
    from store.sql import Database, Row

MEDIA_COLUMNS = (
    "id, chat_id, turn_id, seq, kind, content_type, size_bytes, data, transcript, width, height, "
    "tokens, created_at"
)
OUTBOUND_COLUMNS = "sid, chat_id, reply_to, part, kind, status, error_code, created_at, updated_at"
_IN_LIST = 500
MAX_ID_LENGTH = 64


def _dt(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _media_from(row: Row) -> MediaRecord:
    return MediaRecord(
        id=row[0],
        chat_id=row[1],
        turn_id=row[2],
        seq=None if row[3] is None else int(row[3]),
        kind=MediaKind(row[4]),
        content_type=row[5],
        size=int(row[6]),
        data=None if row[7] is None else bytes(row[7]),
        transcript=row[8],
        width=None if row[9] is None else int(row[9]),
        height=None if row[10] is None else int(row[10]),
        tokens=int(row[11]),
        created_at=_dt(row[12]),
    )


def _outbound_from(row: Row) -> OutboundRecord:
    return OutboundRecord(
        sid=row[0],
        chat_id=row[1],
        reply_to=row[2],
        part=None if row[3] is None else int(row[3]),
        kind=OutboundKind(row[4]),
        status=DeliveryStatus(row[5]),
        error_code=None if row[6] is None else int(row[6]),
        created_at=_dt(row[7]),
        updated_at=_dt(row[8]),
    )


def _check_ids(*ids: str) -> None:
    for value in ids:
        if not value or len(value) > MAX_ID_LENGTH:
            raise InvalidArgument(f"an id of 1-{MAX_ID_LENGTH} characters is required, got {len(value)}")


class SqlMediaStore:
    """The MediaStore implementation shared by MySQL and SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_media(self, media: Sequence[MediaRecord]) -> None:
        if not media:
            return
        for m in media:
            _check_ids(m.id, m.turn_id)
        rows = [
            (m.id, m.chat_id, m.turn_id, m.seq, m.kind.value, m.content_type, m.size, m.data,
             m.transcript, m.width, m.height, m.tokens, m.created_at)
            for m in media
        ]  # fmt: skip
        try:
            async with self._db.transaction() as tx:
                await tx.executemany(f"INSERT INTO media ({MEDIA_COLUMNS}) VALUES ({placeholders(13)})", rows)
        except AlreadyExists:
            raise AlreadyExists("a media id is already stored") from None

    async def attach_media(self, chat_id: str, media_ids: Sequence[str], seq: int) -> int:
        if not media_ids:
            return 0
        async with self._db.transaction() as tx:
            return await tx.execute(
                f"UPDATE media SET seq = %s WHERE chat_id = %s AND id IN ({placeholders(len(media_ids))})",
                [seq, chat_id, *media_ids],
            )

    async def media_for(self, chat_id: str, seqs: Sequence[int]) -> dict[int, list[MediaRecord]]:
        wanted = sorted(set(seqs))
        found: dict[int, list[MediaRecord]] = {}
        async with self._db.transaction() as tx:
            for start in range(0, len(wanted), _IN_LIST):
                part = wanted[start : start + _IN_LIST]
                rows = await tx.fetchall(
                    f"SELECT {', '.join('d.' + c.strip() for c in MEDIA_COLUMNS.split(','))}"
                    " FROM media d JOIN messages m ON m.chat_id = d.chat_id AND m.seq = d.seq"
                    " AND m.turn_id = d.turn_id"
                    f" WHERE d.chat_id = %s AND d.seq IN ({placeholders(len(part))}) ORDER BY d.seq, d.id",
                    [chat_id, *part],
                )
                for row in rows:
                    record = _media_from(row)
                    found.setdefault(int(row[3]), []).append(record)
        return found

    async def drop_media(self, chat_id: str, turn_id: str) -> int:
        async with self._db.transaction() as tx:
            return await tx.execute(
                "DELETE FROM media WHERE chat_id = %s AND turn_id = %s", (chat_id, turn_id)
            )

    async def record_sent(self, record: OutboundRecord) -> OutboundRecord:
        _check_ids(record.sid)
        r = record
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    f"INSERT INTO outbound_messages ({OUTBOUND_COLUMNS}) VALUES ({placeholders(9)})",
                    (r.sid, r.chat_id, r.reply_to, r.part, r.kind.value, r.status.value, r.error_code,
                     r.created_at, r.updated_at),
                )  # fmt: skip
        except AlreadyExists:
            # A status callback came first: fill in what it lacked, keep the further status.
            async with self._db.transaction() as tx:
                await tx.execute(
                    "UPDATE outbound_messages SET chat_id = %s, reply_to = %s, part = %s, kind = %s"
                    " WHERE sid = %s",
                    (r.chat_id, r.reply_to, r.part, r.kind.value, r.sid),
                )
            return await self.record_status(r.sid, r.status, r.error_code)
        return record

    async def record_status(self, sid: str, status: DeliveryStatus, error_code: int | None) -> OutboundRecord:
        _check_ids(sid)
        olds = replaceable_by(status)
        now = utcnow()
        for attempt in (1, 2):
            async with self._db.transaction() as tx:
                if olds:  # one conditional UPDATE: racing callbacks never move a message backwards
                    await tx.execute(
                        "UPDATE outbound_messages SET status = %s, error_code = COALESCE(%s, error_code),"
                        f" updated_at = %s WHERE sid = %s AND status IN ({placeholders(len(olds))})",
                        [status.value, error_code, now, sid, *(o.value for o in olds)],
                    )
                rows = await tx.fetchall(
                    f"SELECT {OUTBOUND_COLUMNS} FROM outbound_messages WHERE sid = %s", (sid,)
                )
            if rows or attempt == 2:
                break
            # A callback before its send was recorded: keep it; record_sent fills in the rest.
            early = OutboundRecord(sid, None, None, None, OutboundKind.TEXT, status, error_code, now, now)
            try:
                async with self._db.transaction() as tx:
                    await tx.execute(
                        f"INSERT INTO outbound_messages ({OUTBOUND_COLUMNS}) VALUES ({placeholders(9)})",
                        (sid, None, None, None, early.kind.value, status.value, error_code, now, now),
                    )
                return early
            except AlreadyExists:
                pass  # another callback inserted it meanwhile: apply ours to that row
        return _outbound_from(rows[0])

    async def delivery(self, sid: str) -> OutboundRecord | None:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT {OUTBOUND_COLUMNS} FROM outbound_messages WHERE sid = %s", (sid,)
            )
        return _outbound_from(rows[0]) if rows else None

    async def outbound_of(self, chat_id: str) -> list[OutboundRecord]:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT {OUTBOUND_COLUMNS} FROM outbound_messages WHERE chat_id = %s"
                " ORDER BY created_at, reply_to, part",
                (chat_id,),
            )
        return [_outbound_from(r) for r in rows]

    async def last_inbound(self, source: str) -> datetime | None:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                # MySQL's _bin collations pad with spaces: equal lengths make the match exact.
                "SELECT MAX(created_at) FROM webhook_events"
                " WHERE source = %s AND LENGTH(source) = LENGTH(%s)",
                (source, source),
            )
        return None if rows[0][0] is None else _dt(rows[0][0])
