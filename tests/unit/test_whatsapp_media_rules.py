"""Pure media rules: voice-note durations, image sizes and tokens, which models see, delivery order."""

from __future__ import annotations

import itertools

import pytest

from gateways.whatsapp.audio import opus_duration
from gateways.whatsapp.images import image_size, image_tokens, sees_images
from store.errors import InvalidArgument
from store.media import FINAL, DeliveryStatus, advances, replaceable_by
from tests.media_files import image, voice_note


@pytest.mark.parametrize("seconds", [0.02, 1.0, 3.0, 61.5, 900.0])
def test_a_voice_notes_duration_is_read_from_its_last_page(seconds: float) -> None:
    assert opus_duration(voice_note(seconds, "olá")) == pytest.approx(seconds, abs=0.001)


def test_anything_but_intact_ogg_opus_has_no_duration() -> None:
    note = voice_note(5.0)
    assert opus_duration(b"") is None
    assert opus_duration(b"ID3\x03" + note) is None  # an MP3 tag in front: not OGG
    assert opus_duration(note.replace(b"OpusHead", b"OpusHexd")) is None  # OGG, but not Opus
    assert opus_duration(note[:200]) == 0.0  # cut inside the first audio page: headers only
    damaged = bytearray(note)
    damaged[-3] ^= 0xFF  # the last page's checksum no longer matches: the page before it counts
    assert opus_duration(bytes(damaged)) == pytest.approx(5.0 - 312 / 48_000)  # less its pre-skip


def test_a_forged_page_inside_audio_data_does_not_count() -> None:
    # An "OggS" in the payload of the last page is not a page: its checksum cannot match.
    note = voice_note(2.0)
    assert opus_duration(note + b"OggS\x00\x04" + b"\xff" * 40) == pytest.approx(2.0, abs=0.001)


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("WEBP-LOSSLESS", "image/webp")],
)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (1600, 1200), (333, 4097)])
def test_an_images_size_comes_from_the_header_a_real_encoder_writes(
    kind: str, content_type: str, width: int, height: int
) -> None:
    data = image(kind, width, height, exif=kind == "JPEG")
    assert image_size(data) == (content_type, width, height)
    assert image_size(data[:64] if kind != "JPEG" else data[:2048]) == (content_type, width, height)


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a\x01\x00\x01\x00", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n" + b"\0" * 20,
     b"RIFF\0\0\0\0WEBPVP8 "],
)  # fmt: skip
def test_what_is_not_an_image_we_read_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        image_size(data)


def test_a_png_claiming_an_impossible_size_is_refused() -> None:
    data = bytearray(image("PNG", 10, 10))
    data[16:20] = (0).to_bytes(4, "big")
    with pytest.raises(InvalidArgument):
        image_size(bytes(data))


def test_openais_published_image_token_examples() -> None:
    assert image_tokens("gpt-4o", 1024, 1024, "high", 0) == 765  # 4 tiles
    assert image_tokens("gpt-4o-2024-08-06", 2048, 4096, "high", 0) == 1105  # 6 tiles after scaling
    assert image_tokens("gpt-4o", 4096, 8192, "low", 0) == 85
    assert image_tokens("gpt-4o-mini", 1024, 1024, "high", 0) == 2833 + 4 * 5667
    assert image_tokens("gpt-4.1-mini", 1024, 1024, "high", 0) == 1659  # 1024 patches x 1.62
    assert image_tokens("gpt-4.1-mini", 1800, 2400, "high", 0) == 2353  # 1452 patches after scaling
    assert image_tokens("gpt-5", 512, 512, "high", 0) == 70 + 140
    assert image_tokens("llava:13b", 1024, 1024, "high", 1234) == 1234  # unknown: the estimate


def test_which_models_see_images() -> None:
    assert sees_images("gpt-4o-mini", "auto") and sees_images("gpt-5-nano", "auto")
    assert sees_images("o3-2025-04-16", "auto") and sees_images("o4-mini", "auto")
    assert not sees_images("gpt-3.5-turbo", "auto") and not sees_images("o3-mini", "auto")
    assert not sees_images("llava:13b", "auto") and sees_images("llava:13b", "on")
    assert not sees_images("gpt-4o", "off")


def test_delivery_status_only_moves_forward_and_finals_stay() -> None:
    order = ["accepted", "queued", "sending", "sent", "delivered", "read"]
    for a, b in itertools.combinations(order, 2):
        assert advances(DeliveryStatus(a), DeliveryStatus(b)) and not advances(
            DeliveryStatus(b), DeliveryStatus(a)
        )
    for final, other in itertools.product(FINAL, DeliveryStatus):
        assert not advances(final, other)
    assert advances(DeliveryStatus.SENT, DeliveryStatus.UNDELIVERED)
    assert not advances(DeliveryStatus.QUEUED, DeliveryStatus.QUEUED)
    assert replaceable_by(DeliveryStatus.ACCEPTED) == ()
    assert set(replaceable_by(DeliveryStatus.FAILED)) == set(DeliveryStatus) - FINAL
