"""Images, pure: their size from the file header, which models see them, and what they cost in tokens.

The width and height come from the first bytes of the file (PNG's IHDR, JPEG's frame header after
any APP segments, WebP's VP8/VP8L/VP8X chunk), never from decoding the picture. Token costs follow
OpenAI's published rules for its models: tile models scale the image into 2048x2048, then its
short side down to 768, and pay a base plus a price per 512-px tile ("low" detail: the base
only); patch models count 32-px patches (at most 1536, the image scaled down to fit) times a
multiplier. Any other model is charged IMAGE_TOKENS per image.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from store.errors import InvalidArgument

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True, slots=True)
class Tiles:
    base: int
    tile: int


@dataclass(frozen=True, slots=True)
class Patches:
    multiplier: float


# Model prefix -> its image cost rule; the longest matching prefix wins (dated snapshots match).
IMAGE_RULES: dict[str, Tiles | Patches | None] = {  # None: a text-only model
    "gpt-5": Tiles(70, 140),
    "gpt-5-mini": Patches(1.62),
    "gpt-5-nano": Patches(2.46),
    "gpt-4.1": Tiles(85, 170),
    "gpt-4.1-mini": Patches(1.62),
    "gpt-4.1-nano": Patches(2.46),
    "gpt-4.5": Tiles(85, 170),
    "gpt-4o": Tiles(85, 170),
    "chatgpt-4o": Tiles(85, 170),
    "gpt-4o-mini": Tiles(2833, 5667),
    "gpt-4-turbo": Tiles(85, 170),
    "o1": Tiles(75, 150),
    "o1-mini": None,
    "o3": Tiles(75, 150),
    "o3-mini": None,
    "o4-mini": Patches(1.72),
}
MAX_PATCHES = 1536


def _rule(model: str) -> Tiles | Patches | None:
    matches = [prefix for prefix in IMAGE_RULES if model.startswith(prefix)]
    return IMAGE_RULES[max(matches, key=len)] if matches else None


def sees_images(model: str, vision: str) -> bool:
    """VISION=on/off says so for every model; auto: the known-model table."""
    if vision != "auto":
        return vision == "on"
    return _rule(model) is not None


def image_tokens(model: str, width: int, height: int, detail: str, estimate: int) -> int:
    """What one image costs in the prompt: the model's rule, else the configured estimate."""
    rule = _rule(model)
    if isinstance(rule, Patches):
        return math.ceil(_patches(width, height) * rule.multiplier)
    if isinstance(rule, Tiles):
        return rule.base if detail == "low" else rule.base + rule.tile * _tiles(width, height)
    return estimate


def _tiles(width: int, height: int) -> int:
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return math.ceil(w / 512) * math.ceil(h / 512)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(32 * 32 * MAX_PATCHES / (width * height))
    # Scaled again so a whole number of patches fits each side.
    shrink *= min(
        math.floor(width * shrink / 32) / (width * shrink / 32),
        math.floor(height * shrink / 32) / (height * shrink / 32),
    )
    return min(MAX_PATCHES, math.ceil(int(width * shrink) / 32) * math.ceil(int(height * shrink) / 32))


# -- sizes from headers ------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MAX_SIDE = 65_535


def image_size(data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) read from the header; InvalidArgument if it is none of ours."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        return _checked("image/png", width, height)
    if data.startswith(b"\xff\xd8"):
        return _checked("image/jpeg", *_jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _checked("image/webp", *_webp_size(data))
    raise InvalidArgument("not a JPEG, PNG or WebP image")


def _checked(kind: str, width: int, height: int) -> tuple[str, int, int]:
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise InvalidArgument(f"{kind} header gives an impossible size {width}x{height}")
    return kind, width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill bytes before a marker
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _SOF and at + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        if length < 2:
            break
        at += 2 + length
    raise InvalidArgument("a JPEG without a frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    raise InvalidArgument("a WebP without a VP8, VP8L or VP8X header")
