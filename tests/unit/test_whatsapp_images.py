"""Image messages: which the chat's model takes, what they cost, and the content parts they become."""

from __future__ import annotations

import base64

import pytest

from gateways.whatsapp import replies
from gateways.whatsapp.content import ImageSettings, check_image, parts, with_images
from gateways.whatsapp.replies import MediaRefused
from store.media import MediaKind, MediaRecord
from tests.media_files import image

SETTINGS = ImageSettings(vision="auto", detail="high", estimate=1000, max_bytes=5 << 20)
PHOTO = image("JPEG", 1600, 1200, exif=True)


def record(data: bytes, seq: int = 2, kind: MediaKind = MediaKind.IMAGE) -> MediaRecord:
    return MediaRecord("ME1", "c", "t", kind, "image/jpeg", len(data), data=data, seq=seq)


def test_a_photo_for_a_vision_model_is_sized_and_costed() -> None:
    checked = check_image(PHOTO, "gpt-4o", SETTINGS)
    assert (checked.content_type, checked.width, checked.height) == ("image/jpeg", 1600, 1200)
    assert checked.tokens == 85 + 170 * 4  # 1024x768 after scaling: 2x2 tiles
    assert check_image(PHOTO, "llava:13b", ImageSettings("on", "high", 1000, 5 << 20)).tokens == 1000


@pytest.mark.parametrize(
    ("data", "model", "settings", "reply", "reason"),
    [
        (PHOTO, "gpt-3.5-turbo", SETTINGS, replies.CANNOT_SEE_IMAGES, "no_vision"),
        (
            PHOTO,
            "gpt-4o",
            ImageSettings("off", "high", 1000, 5 << 20),
            replies.CANNOT_SEE_IMAGES,
            "no_vision",
        ),
        (PHOTO, "gpt-4o", ImageSettings("auto", "high", 1000, 1000), replies.IMAGE_TOO_LARGE, "size"),
        (b"GIF89a" + b"\x00" * 20, "gpt-4o", SETTINGS, replies.UNSUPPORTED_MEDIA, "type"),
    ],
    ids=["text-model", "vision-off", "too-large", "not-an-image-we-read"],
)
def test_an_image_the_chat_cannot_take_gets_a_clear_reply(
    data: bytes, model: str, settings: ImageSettings, reply: str, reason: str
) -> None:
    with pytest.raises(MediaRefused) as refused:
        check_image(data, model, settings)
    assert (refused.value.reply, refused.value.reason) == (reply, reason)


def test_an_image_message_becomes_a_caption_part_and_a_data_url_part() -> None:
    [text, picture] = parts("What is this?", [record(PHOTO)], "high")
    assert text == {"type": "text", "text": "What is this?"}
    url = picture["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,") and picture["image_url"]["detail"] == "high"
    assert base64.b64decode(url.split(",", 1)[1]) == PHOTO
    assert [p["type"] for p in parts("", [record(PHOTO)], "low")] == ["image_url"]  # no caption


def test_only_the_window_messages_with_images_turn_into_parts() -> None:
    voice = MediaRecord("ME2", "c", "t2", MediaKind.VOICE, "audio/ogg", 10, transcript="hi", seq=4)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": "A blue square."},
        {"role": "user", "content": "hi"},
    ]
    out = with_images(messages, [1, 2, 3, 4], {2: [record(PHOTO)], 4: [voice]}, "high")
    assert out[0] == messages[0] and out[2] == messages[2] and out[3] == messages[3]
    assert [p["type"] for p in out[1]["content"]] == ["text", "image_url"]
    assert messages[1] == {"role": "user", "content": "look"}  # the plan's messages are not changed
    with pytest.raises(ValueError, match="one seq per message"):
        with_images(messages, [1, 2], {}, "high")
