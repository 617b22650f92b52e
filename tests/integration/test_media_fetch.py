"""Fetching WhatsApp media from the Twilio stand-in: credentials only to Twilio, the redirect without them,
caps and types checked before the body is trusted, and forged or redirected URLs refused (SSRF)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from yarl import URL

from gateways.whatsapp import replies
from gateways.whatsapp.fetch import MediaFetcher, next_hop
from gateways.whatsapp.replies import MediaRefused
from store.errors import PermissionDenied, Unavailable
from tests.media_files import voice_note
from tests.twilio_api import FakeTwilio

AUTH = "twilio-auth-token-0123456789abcdef"
ACCOUNT = "AC" + "0" * 32
AUDIO = ("audio/ogg", "audio/mpeg")
NOTE = voice_note(3.0, "Qual é a capital do Brasil?")


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilio]:
    with FakeTwilio(auth_token=AUTH) as api:
        yield api


@pytest.fixture
async def fetcher(twilio_api: FakeTwilio) -> AsyncIterator[MediaFetcher]:
    f = MediaFetcher(twilio_api.base_url, ACCOUNT, AUTH, timeout_seconds=2.0)
    yield f
    await f.close()


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """Another local server (an attacker's, or an internal service): records what reaches it."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs} auth={request.headers.get('Authorization')}")
        return web.Response(body=b"secret", content_type="audio/ogg")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_a_voice_note_is_fetched_with_credentials_and_its_redirect_without(
    twilio_api: FakeTwilio, fetcher: MediaFetcher
) -> None:
    url = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE)
    fetched = await fetcher.fetch(url, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)
    assert (fetched.content_type, fetched.data) == ("audio/ogg", NOTE)
    api, storage = twilio_api.media.requests
    assert api.host == "api" and api.authorization is not None and api.authorization.startswith("Basic ")
    assert storage.host == "storage" and storage.authorization is None  # never sent to the other host


@pytest.mark.parametrize(
    "forge",
    [
        lambda url, other: url.replace("http://127.0.0.1:", "http://localhost:"),  # another host name
        lambda url, other: f"http://{other}" + URL(url).path,  # another host:port, same path
        lambda url, other: url.replace(ACCOUNT, "AC" + "1" * 32),  # another account's media
        lambda url, other: url + "?redirect=http://" + other,
        lambda url, other: url.replace("http://", f"http://{ACCOUNT}:x@"),  # userinfo
        lambda url, other: url.replace("/Media/", "/Media/../../../../Messages.json#"),
        lambda url, other: url.rsplit("/Media/", 1)[0] + ".json",  # a Twilio URL, not media
        lambda url, other: url.replace("http://", "file://"),
        lambda url, other: "http://[::1" + url,  # not even a URL
    ],
)
async def test_a_forged_media_url_never_receives_the_credentials(
    twilio_api: FakeTwilio, fetcher: MediaFetcher, elsewhere: tuple[str, list[str]], forge: object
) -> None:
    other, seen = elsewhere
    url = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE)
    with pytest.raises(PermissionDenied):
        await fetcher.fetch(forge(url, other), AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)  # type: ignore[operator]
    assert twilio_api.media.requests == [] and seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://[::1]:{port}/internal",  # loopback, but not the configured API host
        "http://localhost:{port}/internal",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://10.1.2.3/admin",
        "http://[::ffff:127.0.0.1]:{port}/internal",  # IPv4-mapped loopback
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/",
    ],
)
async def test_a_redirect_to_a_private_address_is_not_followed(
    twilio_api: FakeTwilio, fetcher: MediaFetcher, elsewhere: tuple[str, list[str]], target: str
) -> None:
    other, seen = elsewhere
    twilio_api.media.redirect_to = target.format(port=other.rsplit(":", 1)[1])
    url = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE)
    with pytest.raises(MediaRefused) as refused:
        await fetcher.fetch(url, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)
    assert refused.value.reason == "ssrf" and refused.value.reply == replies.FETCH_FAILED
    assert seen == []


def test_a_redirect_never_goes_from_https_down_to_http() -> None:
    here = URL("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME")
    assert next_hop(here, "https://media.twiliocdn.com/x?sig=1") == URL("https://media.twiliocdn.com/x?sig=1")
    assert next_hop(here, "/other") == URL("https://api.twilio.com/other")
    with pytest.raises(MediaRefused):
        next_hop(here, "http://media.twiliocdn.com/x")


@pytest.mark.parametrize(
    "how", [{"declared_length": 50 << 20}, {"chunked": True}], ids=["declared", "chunked-without-length"]
)
async def test_media_over_the_cap_is_refused_with_the_callers_reply(
    twilio_api: FakeTwilio, fetcher: MediaFetcher, how: dict[str, object]
) -> None:
    url = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE * 40, **how)
    with pytest.raises(MediaRefused) as refused:
        await fetcher.fetch(url, AUDIO, len(NOTE) * 10, replies.AUDIO_TOO_LARGE)
    assert (refused.value.reason, refused.value.reply) == ("size", replies.AUDIO_TOO_LARGE)


async def test_media_of_another_type_is_refused(twilio_api: FakeTwilio, fetcher: MediaFetcher) -> None:
    url = twilio_api.add_media(ACCOUNT, "text/html; charset=utf-8", b"<script>")
    with pytest.raises(MediaRefused) as refused:
        await fetcher.fetch(url, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)
    assert refused.value.reason == "type" and refused.value.reply == replies.UNSUPPORTED_MEDIA


async def test_wrong_credentials_a_missing_item_or_a_stall_are_unavailable(twilio_api: FakeTwilio) -> None:
    wrong = MediaFetcher(twilio_api.base_url, ACCOUNT, "not-the-token", timeout_seconds=1.0)
    right = MediaFetcher(twilio_api.base_url, ACCOUNT, AUTH, timeout_seconds=1.0)
    try:
        url = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE)
        with pytest.raises(Unavailable, match="401"):
            await wrong.fetch(url, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)
        with pytest.raises(Unavailable, match="404"):
            await right.fetch(
                url.rsplit("/", 1)[0] + "/ME" + "f" * 32, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE
            )
        stalled = twilio_api.add_media(ACCOUNT, "audio/ogg", NOTE, stall=True)
        with pytest.raises(Unavailable):
            await right.fetch(stalled, AUDIO, 1 << 20, replies.AUDIO_TOO_LARGE)
    finally:
        await wrong.close()
        await right.close()
