"""Voice notes, pure: how long an OGG/Opus file plays, read from its container without decoding it.

WhatsApp records voice notes as Opus in OGG (`audio/ogg; codecs=opus`). Each OGG page header
carries a granule position: for Opus, the count of 48 kHz samples up to the end of that page, less
the pre-skip the OpusHead packet names. So the duration is the granule of the last page, which
sits in the file's last few kilobytes: reading it costs one scan from the end, whatever the size.
A file that is not OGG/Opus has no duration here (None): the size cap and the transcription
server's own limits then apply.
"""

from __future__ import annotations

import struct

OPUS_RATE = 48_000
_CAPTURE = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, page, crc, segments
_TAIL = 65_307  # the largest OGG page: 27 + 255 + 255 * 255 bytes


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def ogg_crc(page: bytes) -> int:
    """OGG's page checksum: CRC-32, polynomial 0x04C11DB7, no reflection, initial value 0."""
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _page_at(data: bytes, at: int) -> tuple[int, int, int, bytes] | None:
    """(granule, serial, page length, body) of a well-formed page starting at `at`, else None."""
    if at + _HEADER.size > len(data):
        return None
    fields: tuple[bytes, int, int, int, int, int, int, int] = _HEADER.unpack_from(data, at)
    capture, version, _, granule, serial, _, crc, count = fields
    if capture != _CAPTURE or version != 0:
        return None
    lacing = data[at + _HEADER.size : at + _HEADER.size + count]
    start = at + _HEADER.size + count
    end = start + sum(lacing)
    if len(lacing) != count or end > len(data):
        return None
    page = bytearray(data[at:end])
    page[22:26] = b"\0\0\0\0"  # the checksum is computed with its own field zeroed
    if ogg_crc(bytes(page)) != crc:
        return None
    return granule, serial, end - at, data[start:end]


def opus_duration(data: bytes) -> float | None:
    """Seconds of audio in an OGG/Opus file, or None when it is not one (or is damaged)."""
    first = _page_at(data, 0)
    if first is None or not first[3].startswith(b"OpusHead") or len(first[3]) < 19:
        return None
    serial = first[1]
    pre_skip: int = struct.unpack_from("<H", first[3], 10)[0]
    at = data.rfind(_CAPTURE, max(0, len(data) - _TAIL))
    while at > 0:
        page = _page_at(data, at)
        if page is not None and page[1] == serial and page[0] >= 0:
            return max(page[0] - pre_skip, 0) / OPUS_RATE
        at = data.rfind(_CAPTURE, max(0, len(data) - _TAIL), at)
    return None
