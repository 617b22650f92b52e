"""The aiohttp application factory."""

from __future__ import annotations

from aiohttp import web

from gateways.http import branches, legacy, page, probes, v1
from gateways.http.guard import same_origin
from gateways.http.keys import READINESS, SERVICE, SETTINGS
from gateways.http.listener import read_body, track
from gateways.http.middleware import PUBLIC, auth, echo_request_id, errors, request_ids
from gateways.service.chats import ChatService
from gateways.serving.readiness import Readiness
from gateways.settings import Settings
from gateways.whatsapp import webhook
from gateways.whatsapp.callbacks import STATUS_PATH

# The webhook is authenticated by Twilio's signature instead of AUTH_TOKEN; the web page carries no
# data (its API calls send the token).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", v1.OPENAPI_PATH, webhook.PATH, STATUS_PATH, *page.PATHS})


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
    app.add_routes(legacy.routes)
    app.add_routes(probes.routes)
    app.add_routes(v1.routes)
    app.add_routes(branches.routes)
    app.add_routes(page.routes)
    if settings.twilio_auth_token is not None:
        app.add_routes(webhook.routes)
        app.cleanup_ctx.append(webhook.lifetime)
    return app
