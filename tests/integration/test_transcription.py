"""Voice notes through the real openai SDK to the test server's OpenAI-compatible transcription route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from gateways.whatsapp import replies
from gateways.whatsapp.replies import MediaRefused
from gateways.whatsapp.transcribe import (
    OfflineTranscriber,
    OpenAITranscriber,
    check_duration,
    reply_for,
)
from store.errors import FailedPrecondition, Unavailable
from tests.llm_server import Behaviour, FakeLLM
from tests.media_files import voice_note

SAID = "Qual é a capital do Brasil? 🇧🇷"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture
def llm(server: FakeLLM) -> FakeLLM:
    server.behaviour = Behaviour()
    server.transcriptions.clear()
    return server


@pytest.fixture
async def transcriber(llm: FakeLLM) -> AsyncIterator[OpenAITranscriber]:
    t = OpenAITranscriber("test-key", llm.base_url, "whisper-1", timeout=10, max_retries=0)
    yield t
    await t.close()


async def test_a_voice_note_becomes_its_transcript(llm: FakeLLM, transcriber: OpenAITranscriber) -> None:
    assert await transcriber.transcribe(voice_note(3.0, SAID), "audio/ogg") == SAID
    [sent] = llm.transcriptions
    assert (sent.model, sent.filename, sent.content_type, sent.response_format) == (
        "whisper-1", "voice.ogg", "audio/ogg", "json",
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["json", "text", "verbose_json", "srt", "vtt"])
async def test_the_stand_ins_answers_are_what_the_sdk_parses(llm: FakeLLM, fmt: str) -> None:
    async with openai.AsyncOpenAI(api_key="k", base_url=llm.base_url, max_retries=0) as client:
        result = await client.audio.transcriptions.create(
            model="whisper-1",
            file=("voice.ogg", voice_note(2.0, SAID), "audio/ogg"),
            response_format=fmt,  # type: ignore[arg-type]
        )
    text = result if isinstance(result, str) else result.text
    assert SAID in text
    if fmt == "verbose_json":
        assert result.duration == pytest.approx(2.0)  # type: ignore[union-attr]


def test_a_note_longer_than_the_limit_is_refused_before_it_is_sent() -> None:
    assert check_duration(voice_note(59.0), 60.0) == pytest.approx(59.0)
    assert check_duration(b"ID3 not ogg", 60.0) is None  # no duration stated: the size cap applies
    with pytest.raises(MediaRefused) as refused:
        check_duration(voice_note(301.0), 300.0)
    assert refused.value.reason == "too_long" and "5 min" in refused.value.reply


@pytest.mark.parametrize(
    ("audio", "content_type"),
    [
        (voice_note(0.04, SAID), "audio/ogg"),  # under 0.1 s: OpenAI's audio_too_short
        (b"\x00" * 4096, "audio/ogg"),  # does not decode
        (voice_note(2.0), "audio/ogg"),  # nothing said: an empty transcript
    ],
    ids=["too-short", "undecodable", "silence"],
)
async def test_audio_the_server_cannot_read_gets_a_clear_reply(
    transcriber: OpenAITranscriber, audio: bytes, content_type: str
) -> None:
    with pytest.raises(MediaRefused) as refused:
        await transcriber.transcribe(audio, content_type)
    assert reply_for(refused.value) == replies.AUDIO_UNREADABLE


async def test_a_type_the_api_does_not_take_is_refused_before_it_is_sent(
    llm: FakeLLM, transcriber: OpenAITranscriber
) -> None:
    with pytest.raises(MediaRefused) as refused:
        await transcriber.transcribe(b"#!AMR\n" + b"\x00" * 64, "audio/amr")
    assert refused.value.reply == replies.UNSUPPORTED_MEDIA and llm.transcriptions == []


async def test_audio_over_the_servers_limit_is_too_large(transcriber: OpenAITranscriber) -> None:
    with pytest.raises(MediaRefused) as refused:
        await transcriber.transcribe(voice_note(1.0, SAID) + b"\x00" * (25 << 20), "audio/ogg")
    assert reply_for(refused.value) == replies.AUDIO_TOO_LARGE


async def test_server_failures_and_servers_without_audio_get_an_apology(
    llm: FakeLLM, transcriber: OpenAITranscriber
) -> None:
    llm.behaviour.transcription_failures.append(500)
    with pytest.raises(Unavailable) as down:
        await transcriber.transcribe(voice_note(1.0, SAID), "audio/ogg")
    assert reply_for(down.value) == replies.TRANSCRIBE_FAILED
    llm.behaviour.backend = "llama-server"  # no /v1/audio/transcriptions route
    with pytest.raises(FailedPrecondition) as missing:
        await transcriber.transcribe(voice_note(1.0, SAID), "audio/ogg")
    assert reply_for(missing.value) == replies.TRANSCRIBE_FAILED


async def test_the_offline_responder_says_it_cannot_transcribe() -> None:
    with pytest.raises(MediaRefused) as refused:
        await OfflineTranscriber().transcribe(voice_note(1.0, SAID), "audio/ogg")
    assert reply_for(refused.value) == replies.CANNOT_TRANSCRIBE
