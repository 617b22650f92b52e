"""Real media files for tests: OGG/Opus voice notes and JPEG/PNG/WebP images, made here.

A voice note is a valid OGG/Opus stream (OpusHead, OpusTags, 20 ms packets, page checksums) whose
packets are Opus's silent frame; its OpusTags comment TRANSCRIPT=... is what the test LLM server
"hears". Images are encoded by Pillow (a dev dependency) so headers are those a real encoder writes.
`python -m tests.media_files DIR` writes a sample of each into DIR.
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

from gateways.whatsapp.audio import ogg_crc

SILENT_FRAME = b"\xf8\xff\xfe"  # TOC: CELT fullband 20 ms, mono, one frame; then a silent frame
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
PRE_SKIP = 312  # what libopus' encoder reports


def _page(body_packets: list[bytes], granule: int, serial: int, seq: int, kind: int) -> bytes:
    lacing = bytearray()
    for packet in body_packets:
        n = len(packet)
        lacing += b"\xff" * (n // 255) + bytes([n % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, kind, granule, serial, seq, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(body_packets))
    page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(page)


def voice_note(seconds: float, transcript: str = "", serial: int = 0x5EED) -> bytes:
    """An OGG/Opus file of `seconds` of silence tagged TRANSCRIPT=`transcript`."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, PRE_SKIP, 48_000, 0, 0)
    vendor = b"chatservice tests"
    comments = [f"TRANSCRIPT={transcript}".encode()] if transcript else []
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    tags += b"".join(struct.pack("<I", len(c)) + c for c in comments)
    out = [_page([head], 0, serial, 0, 0x02), _page([tags], 0, serial, 1, 0)]
    samples = round(seconds * 48_000)
    # As an encoder does: pre-skip samples first, the last page's granule trims the end.
    frames = max(1, -(-(samples + PRE_SKIP) // FRAME_SAMPLES))
    per_page, seq, done = 50, 2, 0  # one second a page
    while done < frames:
        n = min(per_page, frames - done)
        done += n
        last = done == frames
        granule = PRE_SKIP + samples if last else done * FRAME_SAMPLES
        out.append(_page([SILENT_FRAME] * n, granule, serial, seq, 0x04 if last else 0))
        seq += 1
    return b"".join(out)


def image(kind: str, width: int, height: int, exif: bool = False) -> bytes:
    """A `kind` (JPEG, PNG, WEBP or lossless WEBP as 'WEBP-LOSSLESS') image of that size."""
    from PIL import Image

    picture = Image.new("RGB", (width, height), (30, 120, 200))
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if exif:
        data = Image.Exif()
        data[0x010F] = "chatservice tests"  # Make: an APP1 segment before the frame header
        options["exif"] = data.tobytes()
    if kind == "WEBP-LOSSLESS":
        kind, options["lossless"] = "WEBP", True
    picture.save(buffer, kind, **options)
    return buffer.getvalue()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
    out.mkdir(parents=True, exist_ok=True)
    (out / "voice-note.ogg").write_bytes(voice_note(3.0, "Qual é a capital do Brasil?"))
    (out / "photo.jpg").write_bytes(image("JPEG", 1600, 1200, exif=True))
    print(f"wrote test media into {out}")


if __name__ == "__main__":
    main()
