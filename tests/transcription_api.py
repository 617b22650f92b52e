"""The test LLM server's `POST /v1/audio/transcriptions`, answering as OpenAI's does.

It "hears" the TRANSCRIPT=... comment of an OGG/Opus file's OpusTags (tests/media_files.py makes
such files) and answers each response_format in OpenAI's shape. Its refusals are OpenAI's, with
their wire text: a file name whose extension is not a supported format, bytes that do not decode,
audio under 0.1 s (400), a body over 25 MiB (413). llama.cpp and Ollama servers have no such
route (404). `failures` (HTTP statuses) are answered first, one per request.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateways.whatsapp.audio import opus_duration

SUPPORTED = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
MAX_BYTES = 26_214_400
NO_AUDIO_ROUTE = ("llama-server", "llamacpp-python", "ollama")


@dataclass(frozen=True)
class Transcription:
    model: str
    filename: str
    content_type: str
    size: int
    response_format: str
    language: str | None


def transcript_of(data: bytes) -> str:
    """The TRANSCRIPT comment of an OGG/Opus file's OpusTags packet ('' if none)."""
    at = data.find(b"OpusTags")
    if at < 0:
        return ""
    at += 8
    (vendor,) = struct.unpack_from("<I", data, at)
    at += 4 + vendor
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, at)
        comment = data[at + 4 : at + 4 + length].decode("utf-8", "replace")
        at += 4 + length
        if comment.startswith("TRANSCRIPT="):
            return comment.removeprefix("TRANSCRIPT=")
    return ""


def _error(
    status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status
    )


def handler(
    backend: Callable[[], str], failures: Callable[[], int | None], records: list[Transcription]
) -> Callable[[web.Request], Any]:
    async def transcriptions(request: web.Request) -> web.Response:
        if backend() in NO_AUDIO_ROUTE:
            return web.Response(status=404, text="File Not Found")
        if request.content_length is not None and request.content_length > MAX_BYTES:
            read = request.content_length
            return _error(
                413, f"Maximum content size limit ({MAX_BYTES}) exceeded ({read} bytes read)", "server_error"
            )
        fields: dict[str, Any] = {}
        async for part in await request.multipart():
            if part.name == "file":
                fields["file"] = (
                    part.filename or "",
                    part.headers.get("Content-Type", ""),
                    await part.read(),
                )  # type: ignore[union-attr]
            elif part.name:
                fields[part.name] = await part.text()  # type: ignore[union-attr]
        if "file" not in fields or "model" not in fields:
            return _error(400, "'file' and 'model' are required properties")
        filename, content_type, data = fields["file"]
        fmt = fields.get("response_format", "json")
        records.append(
            Transcription(fields["model"], filename, content_type, len(data), fmt, fields.get("language"))
        )
        status = failures()
        if status is not None:
            return _error(status, f"fake failure {status}", "server_error" if status >= 500 else "error")
        if filename.rsplit(".", 1)[-1].lower() not in SUPPORTED:
            return _error(400, f"Invalid file format. Supported formats: {list(SUPPORTED)}")
        seconds = opus_duration(data)
        if seconds is None:
            return _error(400, "The audio file could not be decoded or its format is not supported.")
        if seconds < 0.1:
            return _error(
                400, "Audio file is too short. Minimum audio length is 0.1 seconds.", code="audio_too_short"
            )
        return _answer(fmt, transcript_of(data), seconds)

    return transcriptions


def _answer(fmt: str, text: str, seconds: float) -> web.Response:
    if fmt == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if fmt == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": seconds,
            "text": text,
            "tokens": [],
            "temperature": 0.0,
        }
        return web.json_response(
            {
                "task": "transcribe",
                "language": "portuguese",
                "duration": seconds,
                "text": text,
                "segments": [segment],
            }
        )
    if fmt in ("srt", "vtt"):
        end = f"00:00:{seconds:06.3f}"
        cue = (
            f"1\n00:00:00,000 --> {end.replace('.', ',')}\n{text}\n"
            if fmt == "srt"
            else f"WEBVTT\n\n00:00:00.000 --> {end}\n{text}\n"
        )
        return web.Response(text=cue, content_type="text/plain")
    return web.json_response({"text": text, "usage": {"type": "duration", "seconds": math.ceil(seconds)}})
