"""The aiohttp application factory."""

from __future__ import annotations

from aiohttp import web

from gateways.health import Readiness
from gateways.http import branches, chat, health, page, twilio, v1
from gateways.http.guard import same_origin
from gateways.http.keys import READINESS, SERVICE, SETTINGS
from gateways.http.listener import read_body, track
from gateways.http.middleware import PUBLIC, auth, echo_request_id, errors, request_ids
from gateways.service import ChatService
from gateways.settings import Settings
from gateways.whatsapp_media.callbacks import STATUS_PATH

# The webhook is authenticated by Twilio's signature instead of AUTH_TOKEN; the web page carries no
# data (its API calls send the token).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", v1.OPENAPI_PATH, twilio.PATH, STATUS_PATH, *page.PATHS})


def create_app(settings: Settings, service: ChatService, readiness: Readiness) -> web.Application:
    app = web.Application(
        middlewares=[track, request_ids, errors, same_origin, auth, read_body],
        client_max_size=settings.max_body_bytes,
    )
    app.on_response_prepare.append(echo_request_id)
    app[SETTINGS] = settings
    app[SERVICE] = service
    app[READINESS] = readiness
    app[PUBLIC] = PUBLIC_PATHS
    app.add_routes(chat.routes)
    app.add_routes(health.routes)
    app.add_routes(v1.routes)
    app.add_routes(branches.routes)
    app.add_routes(page.routes)
    if settings.twilio_auth_token is not None:
        app.add_routes(twilio.routes)
        app.cleanup_ctx.append(twilio.lifetime)
    return app
