"""POST /chat: the original service's JSON shape, answered whole."""

from __future__ import annotations

from aiohttp import web

from gateways.http.keys import SERVICE
from gateways.http.middleware import read_json, text_field
from gateways.http.responses import json_response

routes = web.RouteTableDef()


@routes.post("/chat")
async def post_chat(request: web.Request) -> web.Response:
    body = await read_json(request)
    user_id = text_field(body, "user_id") or ""
    message = text_field(body, "user_message") or ""
    chat_id = text_field(body, "chat_id", required=False) or None
    chat_id, content = await request.app[SERVICE].answer(user_id, chat_id, message)
    return json_response({"chat_id": chat_id, "user_id": user_id, "content": content})
