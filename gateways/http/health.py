"""GET /healthz (the process is up) and GET /readyz (Ray and the store answer)."""

from __future__ import annotations

from aiohttp import web

from gateways.http.keys import READINESS

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].check()
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
