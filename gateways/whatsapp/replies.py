"""What the bot says about media it cannot take, in English and Portuguese, and the error that carries it."""

from __future__ import annotations

from store.errors import InvalidArgument

CANNOT_TRANSCRIBE = (
    "I cannot listen to voice notes here (no transcription is configured): please type your "
    "question. / Não consigo ouvir áudios aqui (não há transcrição configurada): escreva sua pergunta."
)
AUDIO_TOO_LONG = (
    "That voice note is too long for me ({limit}): please send a shorter one or type it. / "
    "Esse áudio é longo demais para mim ({limit}): envie um mais curto ou escreva."
)
AUDIO_TOO_LARGE = (
    "That voice note is too large for me to fetch: please send a shorter one or type it. / "
    "Esse áudio é grande demais: envie um mais curto ou escreva."
)
AUDIO_UNREADABLE = (
    "I could not make out that voice note: please send it again or type it. / "
    "Não consegui entender esse áudio: envie de novo ou escreva."
)
TRANSCRIBE_FAILED = (
    "Sorry, I could not listen to that voice note right now; please try again in a moment. / "
    "Desculpe, não consegui ouvir esse áudio agora; tente novamente em instantes."
)
CANNOT_SEE_IMAGES = (
    "This model cannot see images: please describe it in words. / "
    "Este modelo não vê imagens: descreva-a em palavras."
)
IMAGE_TOO_LARGE = (
    "That image is too large for me: please send a smaller one. / "
    "Essa imagem é grande demais: envie uma menor."
)
UNSUPPORTED_MEDIA = (
    "I can read text, voice notes and photos (JPEG, PNG, WebP), not this kind of file. / "
    "Leio texto, áudios e fotos (JPEG, PNG, WebP), não esse tipo de arquivo."
)
FETCH_FAILED = (
    "Sorry, I could not fetch what you sent; please try again in a moment. / "
    "Desculpe, não consegui baixar o que você enviou; tente novamente em instantes."
)


class MediaRefused(InvalidArgument):
    """Media the bot will not take: `reply` is what the sender is told, `reason` a metric label."""

    code = "media_refused"

    def __init__(self, message: str, reply: str = UNSUPPORTED_MEDIA, reason: str = "unsupported") -> None:
        super().__init__(message)
        self.reply = reply
        self.reason = reason


def minutes(seconds: float) -> str:
    """'5 min' or '90 s': a limit as the replies state it."""
    return f"{seconds / 60:g} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g} s"
