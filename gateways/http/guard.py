"""Requests a browser was tricked into sending: another site's Origin, or a rebound Host name.

A page on another site can post to this service (a form or a `text/plain` fetch needs no CORS
preflight), and a page whose DNS name is rebound to 127.0.0.1 reaches a loopback service under
its own Host name, with the same-origin policy on its side. Browsers always send `Origin` on
such requests and the Host they think they talk to, so both are checked here; clients that are
not browsers (curl, SDKs, Twilio) send neither an Origin nor a foreign Host.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from gateways.http.keys import SETTINGS
from gateways.settings import Settings, is_loopback
from store.errors import MisdirectedRequest, PermissionDenied

Address = tuple[str, int | None]  # a host name, lowercased, and its explicit port (None: default)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _address(authority: str) -> Address | None:
    """A Host header: 'Example.com:8080' -> ('example.com', 8080); None if it does not parse."""
    try:
        parts = urlsplit(f"//{authority}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port, or brackets that do not close
        return None
    return (host, None if port in _DEFAULT_PORTS.values() else port) if host else None


def _origin(origin: str) -> tuple[str, Address] | None:
    """An Origin header's scheme and address; None for `null` or anything else unparsable."""
    try:
        parts = urlsplit(origin)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not host or parts.path or parts.query:
        return None
    return parts.scheme, (host, None if port == _DEFAULT_PORTS[parts.scheme] else port)


def _public(settings: Settings) -> tuple[str, Address] | None:
    """PUBLIC_URL's origin (its path, a prefix the service is mounted under, is not part of it)."""
    if settings.public_url is None:
        return None
    parts = urlsplit(settings.public_url)
    return _origin(f"{parts.scheme}://{parts.netloc}")


def own_origin(origin: str, host_header: str | None, settings: Settings) -> bool:
    """The request's own origin (same host and port as its Host header), or PUBLIC_URL's."""
    claimed = _origin(origin)
    if claimed is None:
        return False
    if claimed == _public(settings):
        return True
    # Any scheme: behind a TLS terminator the Origin says https and this service sees http.
    return host_header is not None and claimed[1] == _address(host_header)


def loopback_name(host: str) -> bool:
    """Names that always mean this machine: no DNS answer can point them elsewhere."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str, settings: Settings) -> bool:
    """On loopback, only loopback names or PUBLIC_URL's host: never a rebound DNS name."""
    if not is_loopback(settings.host):
        return True
    address = _address(host_header)
    if address is None:
        return False
    public = _public(settings)
    return loopback_name(address[0]) or (public is not None and address[0] == public[1][0])


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for another origin's request, 421 for a Host a loopback service does not answer to."""
    settings = request.app[SETTINGS]
    host = request.headers.get("Host")
    if host is not None and not host_allowed(host, settings):
        raise MisdirectedRequest(
            "this service listens on loopback and answers only to loopback names (localhost, "
            "127.0.0.1, [::1]) or PUBLIC_URL's host"
        )
    origin = request.headers.get("Origin")
    if origin is not None and not own_origin(origin, host, settings):
        raise PermissionDenied(
            "cross-origin request refused: the Origin is not this service's (set PUBLIC_URL if "
            "the service is reached under another name)"
        )
    return await handler(request)
