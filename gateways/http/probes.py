"""GET /healthz (the process is up) and GET /readyz (Ray and the store answer)."""

from __future__ import annotations

from aiohttp import web

from gateways.http.keys import READINESS
from gateways.http.responses import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].check()
    ready = all(checks.values())
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
