"""Fetching a message's media from Twilio: credentials for Twilio's media URL only, never beyond.

A `MediaUrl0` is fetched only if it is exactly `<TWILIO_API_BASE_URL>/2010-04-01/Accounts/<our
account>/Messages/<MM|SM sid>/Media/<ME sid>`: only that request carries the account's HTTP basic
credentials. Twilio answers it with a redirect to its media storage (a short-lived signed URL on
another host), which is followed without credentials, at most three hops, never from https down to
http, and never to a private, loopback or link-local address (checked on the addresses actually
connected to, so a name that resolves to one is refused too), unless that host is the configured
API host itself (a local stand-in or proxy the operator chose). The declared size is checked before
the body is read and the count while it is read; the whole fetch has a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from yarl import URL

from gateways.whatsapp import replies
from gateways.whatsapp.replies import MediaRefused
from store.errors import PermissionDenied, Unavailable

_PATH = re.compile(
    r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages/(?:MM|SM)[0-9a-f]{32}/Media/ME[0-9a-f]{32}"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 3
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    content_type: str  # the media type without parameters, lower case
    data: bytes


@dataclass(frozen=True, slots=True)
class _Limits:
    types: tuple[str, ...]
    max_bytes: int
    too_large: str


def is_public(address: str) -> bool:
    """Whether connecting to `address` leaves this machine's networks (IPv4-mapped IPv6 unwrapped)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _GuardedConnector(aiohttp.TCPConnector):
    """Connects only to public addresses, or to the trusted host's (the configured API host)."""

    def __init__(self, trusted_host: str) -> None:
        super().__init__(limit=16, ttl_dns_cache=60)
        self._trusted = trusted_host

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        found = await super()._resolve_host(host, port, traces)
        if host == self._trusted:
            return found
        allowed = [r for r in found if is_public(r["host"])]
        if not allowed:
            raise MediaRefused(
                f"media redirect to {host}: not a public address", replies.FETCH_FAILED, "ssrf"
            )
        return allowed


class MediaFetcher:
    """One per gateway process: a pooled session that only ever reaches Twilio and public hosts."""

    def __init__(
        self, api_base_url: str, account_sid: str, auth_token: str, *, timeout_seconds: float = 15.0
    ) -> None:
        self._base = URL(api_base_url)
        self._account = account_sid
        self._auth = aiohttp.BasicAuth(account_sid, auth_token)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the running loop
            self._session = aiohttp.ClientSession(
                connector=_GuardedConnector(self._base.host or ""), timeout=self._timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check_url(self, url: str) -> URL:
        """The media URL if it is this account's media on Twilio's API; PermissionDenied otherwise."""
        try:
            parsed = URL(url, encoded=False)
        except ValueError:
            raise PermissionDenied("a media URL that is not a URL") from None
        base = self._base
        same_origin = (parsed.scheme, parsed.host, parsed.port) == (base.scheme, base.host, base.port)
        match = _PATH.fullmatch(parsed.path.removeprefix(base.path.rstrip("/")))
        if (
            not same_origin
            or parsed.user is not None
            or parsed.password is not None
            or parsed.query_string
            or parsed.fragment
            or match is None
            or match.group(1) != self._account
        ):
            raise PermissionDenied("a media URL that is not this account's media on Twilio's API")
        return parsed

    async def fetch(self, url: str, types: Sequence[str], max_bytes: int, too_large: str) -> Fetched:
        """The media's bytes, if of one of `types` and at most `max_bytes` (else MediaRefused, whose
        reply is `too_large` for a size over the cap); Unavailable if Twilio cannot be reached."""
        target = self.check_url(url)
        try:
            async with asyncio.timeout(self._timeout.total):
                return await self._follow(target, _Limits(tuple(types), max_bytes, too_large))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unavailable(f"could not fetch the media ({type(exc).__name__})") from None

    async def _follow(self, target: URL, limits: _Limits) -> Fetched:
        session = self._session_now()
        auth: aiohttp.BasicAuth | None = self._auth  # the first request only
        for _ in range(MAX_HOPS + 1):
            async with session.get(target, auth=auth, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    target = next_hop(target, response.headers.get("Location", ""))
                    auth = None
                    continue
                if response.status != 200:
                    raise Unavailable(f"the media server answered {response.status}")
                return await _read(response, limits)
        raise Unavailable(f"the media URL redirected more than {MAX_HOPS} times")


def next_hop(current: URL, location: str) -> URL:
    """Where a redirect from `current` leads: http(s) only, and never from https down to http."""
    try:
        following = current.join(URL(location))
    except ValueError:
        raise Unavailable("the media server redirected to something that is not a URL") from None
    if following.scheme not in ("http", "https") or not following.host:
        raise MediaRefused(f"media redirect to a {following.scheme!r} URL", replies.FETCH_FAILED, "ssrf")
    if current.scheme == "https" and following.scheme != "https":
        raise MediaRefused("media redirect from https down to http", replies.FETCH_FAILED, "ssrf")
    return following


def _media_type(response: aiohttp.ClientResponse) -> str:
    return response.content_type.split(";", 1)[0].strip().lower()


async def _read(response: aiohttp.ClientResponse, limits: _Limits) -> Fetched:
    kind = _media_type(response)
    if kind not in limits.types:
        raise MediaRefused(f"media of type {kind!r}", replies.UNSUPPORTED_MEDIA, "type")
    cap = limits.max_bytes
    declared = response.content_length
    if declared is not None and declared > cap:  # refused before a byte of the body is read
        raise MediaRefused(f"media of {declared} bytes, more than {cap}", limits.too_large, "size")
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > cap:  # a length that lied, or none given
            raise MediaRefused(f"media of more than {cap} bytes", limits.too_large, "size")
    return Fetched(kind, bytes(body))
