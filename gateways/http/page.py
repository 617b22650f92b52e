"""The web page: GET / and its assets, public (the page sends the token on its own API calls)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

routes = web.RouteTableDef()

# name -> content type; everything the page loads comes from here (no CDN: many deployments are offline).
ASSETS = {
    "index.html": "text/html",
    "app.css": "text/css",
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "state.js": "text/javascript",
    "turns.js": "text/javascript",
    "view.js": "text/javascript",
    "controls.js": "text/javascript",
    "branches.js": "text/javascript",
    "chats.js": "text/javascript",
    "copy.js": "text/javascript",
    "markdown.js": "text/javascript",
    "code.js": "text/javascript",
    "highlight.min.js": "text/javascript",  # vendored: web/VENDOR.md
    "icon.svg": "image/svg+xml",
}
ASSET_PREFIX = "/web/"
PATHS = frozenset({"/", *(ASSET_PREFIX + name for name in ASSETS if name != "index.html")})

# No inline script or style, nothing from elsewhere, and (Trusted Types) no HTML parsed from strings:
# model output is untrusted, so the page builds DOM nodes and the browser refuses anything else.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time (a cheap 304): after an upgrade no browser runs a stale script.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def asset(name: str) -> Asset:
    body = resources.files("gateways.http").joinpath("web", name).read_bytes()
    return Asset(body, ASSETS[name], hashlib.sha256(body).hexdigest()[:32])


def _respond(request: web.Request, name: str) -> web.Response:
    a = asset(name)
    if request.if_none_match and any(tag.value == a.etag for tag in request.if_none_match):
        response = web.Response(status=304, headers=HEADERS)
    else:
        response = web.Response(body=a.body, content_type=a.content_type, charset="utf-8", headers=HEADERS)
    response.etag = a.etag
    return response


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return _respond(request, "index.html")


@routes.get(ASSET_PREFIX + "{name}")
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS or name == "index.html":
        raise web.HTTPNotFound()
    return _respond(request, name)
