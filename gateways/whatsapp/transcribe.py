"""Voice notes to text through the OpenAI-compatible audio API (`POST /audio/transcriptions`).

The file goes as multipart with a name whose extension tells the server its format (OpenAI reads
the format from it), `response_format=json` (the one format every such server answers: OpenAI's
whisper-1 and gpt-4o-*-transcribe, vLLM, whisper.cpp, faster-whisper servers). A note longer than
VOICE_MAX_SECONDS is refused before it is sent, by the duration its OGG/Opus container states;
other containers are bounded by the size cap and by the server's own answer (OpenAI refuses
more than 25 MiB with 413 and less than 0.1 s with 400).
"""

from __future__ import annotations

from typing import Protocol

import openai

from gateways.whatsapp import replies
from gateways.whatsapp.audio import opus_duration
from gateways.whatsapp.replies import MediaRefused
from store.errors import ChatServiceError, FailedPrecondition, ResourceExhausted, Unavailable

# What WhatsApp sends as voice notes and audio files, and the file name each goes to the API as.
FILE_NAMES = {
    "audio/ogg": "voice.ogg",
    "audio/opus": "voice.ogg",
    "audio/mpeg": "audio.mp3",
    "audio/mp4": "audio.m4a",
    "audio/x-m4a": "audio.m4a",
    "audio/webm": "audio.webm",
    "audio/wav": "audio.wav",
    "audio/x-wav": "audio.wav",
    "audio/flac": "audio.flac",
}
AUDIO_TYPES = tuple(FILE_NAMES)


class Transcriber(Protocol):
    """Audio in, text out; failures are ChatServiceErrors (MediaRefused says what to tell the sender)."""

    async def transcribe(self, audio: bytes, content_type: str) -> str: ...

    async def close(self) -> None: ...


def check_duration(audio: bytes, max_seconds: float) -> float | None:
    """The note's duration if its container states one; MediaRefused if longer than `max_seconds`."""
    seconds = opus_duration(audio)
    if seconds is not None and seconds > max_seconds:
        limit = replies.minutes(max_seconds)
        raise MediaRefused(
            f"a voice note of {seconds:.1f} s, more than {max_seconds:g} s",
            replies.AUDIO_TOO_LONG.format(limit=limit),
            "too_long",
        )
    return seconds


def translate(exc: Exception) -> ChatServiceError:
    """The error tree's view of a transcription failure."""
    if isinstance(exc, openai.APIStatusError) and exc.status_code == 413:
        return MediaRefused(
            "the transcription server found the audio too large", replies.AUDIO_TOO_LARGE, "size"
        )
    if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        return MediaRefused(
            f"the transcription server refused the audio: {exc.message}",
            replies.AUDIO_UNREADABLE,
            "unreadable",
        )
    if isinstance(exc, openai.NotFoundError):
        return FailedPrecondition(f"the LLM server does not transcribe audio with this model: {exc.message}")
    if isinstance(exc, openai.RateLimitError):
        return ResourceExhausted("the transcription server is rate-limiting this service; retry in a moment")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return Unavailable("the transcription server rejected the service's credentials (OPENAI_API_KEY)")
    if isinstance(exc, openai.APITimeoutError):
        return Unavailable("the transcription server did not answer in time")
    return Unavailable("the transcription server failed; retry shortly")


def reply_for(exc: ChatServiceError) -> str:
    """What the sender is told: what MediaRefused says, else an apology."""
    return exc.reply if isinstance(exc, MediaRefused) else replies.TRANSCRIBE_FAILED


class OpenAITranscriber:
    """Any OpenAI-compatible audio API through AsyncOpenAI (it retries 429/5xx before we see them)."""

    def __init__(
        self, api_key: str, base_url: str | None, model: str, timeout: float, max_retries: int = 2
    ) -> None:
        self._model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    async def transcribe(self, audio: bytes, content_type: str) -> str:
        name = FILE_NAMES.get(content_type)
        if name is None:
            raise MediaRefused(f"audio of type {content_type!r} cannot be transcribed", reason="type")
        try:
            result = await self._client.audio.transcriptions.create(
                model=self._model, file=(name, audio, content_type), response_format="json"
            )
        except openai.OpenAIError as exc:
            raise translate(exc) from exc
        text = result.text.strip()
        if not text:  # silence, or nothing the model could make out
            raise MediaRefused("the transcript is empty", replies.AUDIO_UNREADABLE, "empty")
        return text

    async def close(self) -> None:
        await self._client.close()


class OfflineTranscriber:
    """Without OPENAI_API_KEY: every voice note is answered that it cannot be listened to."""

    async def transcribe(self, audio: bytes, content_type: str) -> str:
        raise MediaRefused("no transcription server is configured", replies.CANNOT_TRANSCRIBE, "offline")

    async def close(self) -> None:
        return None
