"""Image messages, pure: checking an image the chat's model can see, and the prompt parts it becomes.

An image message is stored as its caption (the message's text, counted as text) plus a media row
with the image's bytes and its token cost, which the gateway adds to the message's tokens so the
window counts the image too. Actors never hold image bytes: when the gateway builds an LLM request
it loads the media of the window's messages and turns each image message into Chat Completions
content parts: the caption as a text part, each image as an `image_url` part with a `data:` URL.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateways.whatsapp import replies
from gateways.whatsapp.images import IMAGE_TYPES, image_size, image_tokens, sees_images
from gateways.whatsapp.replies import MediaRefused
from store.errors import InvalidArgument
from store.media import MediaKind, MediaRecord


@dataclass(frozen=True, slots=True)
class ImageSettings:
    vision: str  # VISION: auto, on or off
    detail: str  # IMAGE_DETAIL: low or high
    estimate: int  # IMAGE_TOKENS: per image, for models without a known rule
    max_bytes: int  # IMAGE_MAX_BYTES


@dataclass(frozen=True, slots=True)
class CheckedImage:
    content_type: str  # from the file's own header, whatever the HTTP type said
    width: int
    height: int
    tokens: int


def check_image(data: bytes, model: str, settings: ImageSettings) -> CheckedImage:
    """An image the chat's model can see, with its size and cost; MediaRefused with the reply otherwise."""
    if not sees_images(model, settings.vision):
        raise MediaRefused(f"model {model!r} does not take images", replies.CANNOT_SEE_IMAGES, "no_vision")
    if len(data) > settings.max_bytes:
        raise MediaRefused(f"an image of {len(data)} bytes", replies.IMAGE_TOO_LARGE, "size")
    try:
        kind, width, height = image_size(data)
    except InvalidArgument as exc:
        raise MediaRefused(exc.message, replies.UNSUPPORTED_MEDIA, "type") from None
    assert kind in IMAGE_TYPES
    tokens = image_tokens(model, width, height, settings.detail, settings.estimate)
    return CheckedImage(kind, width, height, tokens)


def data_url(image: MediaRecord) -> str:
    assert image.data is not None
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def parts(caption: str, images: Sequence[MediaRecord], detail: str) -> list[dict[str, Any]]:
    """A user message's content parts: its caption (if any), then its images in order."""
    out: list[dict[str, Any]] = [{"type": "text", "text": caption}] if caption else []
    out += [
        {"type": "image_url", "image_url": {"url": data_url(m), "detail": detail}}
        for m in images
        if m.kind is MediaKind.IMAGE and m.data is not None
    ]
    return out


def with_images(
    messages: Sequence[Mapping[str, Any]],
    seqs: Sequence[int],
    media: Mapping[int, Sequence[MediaRecord]],
    detail: str,
) -> list[dict[str, Any]]:
    """The prompt's messages (`seqs[i]` is the stored seq of `messages[i]`), image messages as parts."""
    if len(messages) != len(seqs):
        raise ValueError("one seq per message is needed")
    out: list[dict[str, Any]] = []
    for message, seq in zip(messages, seqs, strict=True):
        images = [m for m in media.get(seq, ()) if m.kind is MediaKind.IMAGE and m.data is not None]
        if images and message.get("role") == "user":
            out.append({**message, "content": parts(str(message.get("content") or ""), images, detail)})
        else:
            out.append(dict(message))
    return out
