"""The /v1 JSON API: a user's chats and messages under /v1/users/{user_id}, answers as JSON or SSE.

The token authenticates the calling back end; the user is the {user_id} path segment, and every
call checks that the chat belongs to that user.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from gateways.http import branches, shapes
from gateways.http.answer import respond_turn
from gateways.http.keys import SERVICE
from gateways.http.middleware import read_json, text_field
from gateways.http.responses import json_response
from gateways.service.chats import ChatService
from store.errors import InvalidArgument

routes = web.RouteTableDef()
CHATS = "/v1/users/{user_id}/chats"
CHAT = CHATS + "/{chat_id}"
OPENAPI_PATH = "/v1/openapi.json"


def _service(request: web.Request) -> ChatService:
    return request.app[SERVICE]


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["user_id"], request.match_info["chat_id"]


async def _optional_json(request: web.Request) -> dict[str, object]:
    """An empty body is an empty object (a chat with every default)."""
    if not await request.read():
        return {}
    return await read_json(request)


@routes.get(OPENAPI_PATH)
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_document(), content_type="application/json", charset="utf-8")


@cache
def openapi_document() -> bytes:
    return resources.files("gateways.http").joinpath("openapi.json").read_bytes()


@routes.post(CHATS)
async def create_chat(request: web.Request) -> web.Response:
    body = await _optional_json(request)
    overrides = shapes.overrides(body)
    chat_id = text_field(body, "chat_id", required=False) or None
    record, window = await _service(request).create_chat(request.match_info["user_id"], overrides, chat_id)
    return json_response(shapes.chat(record, window), status=201)


@routes.get(CHATS)
async def list_chats(request: web.Request) -> web.Response:
    q = request.query
    if q.get("q", "").strip():
        return await branches.search(request)
    chats, token = await _service(request).list_chats(
        request.match_info["user_id"], shapes.page_size(q.get("page_size")), q.get("page_token", "")
    )
    return json_response({"chats": [shapes.chat(c) for c in chats], "next_page_token": token})


@routes.get(CHAT)
async def get_chat(request: web.Request) -> web.Response:
    record, window = await _service(request).get_chat(*_ids(request))
    return json_response(shapes.chat(record, window))


@routes.post(CHAT + "/end")
async def end_chat(request: web.Request) -> web.Response:
    record = await _service(request).end_chat(*_ids(request))
    return json_response(shapes.chat(record))


@routes.delete(CHAT)
async def delete_chat(request: web.Request) -> web.Response:
    await _service(request).delete_chat(*_ids(request))
    return web.Response(status=204)


@routes.get(CHAT + "/messages")
async def list_messages(request: web.Request) -> web.Response:
    """The messages of the active path, or of the path through `?leaf=`, each with its siblings."""
    return await branches.list_path(request)


@routes.post(CHAT + "/messages")
async def send_message(request: web.Request) -> web.StreamResponse:
    """One turn. Errors found before the answer starts are plain JSON errors, even for SSE."""
    body = await read_json(request)
    unknown = sorted(set(body) - {"content"})
    if unknown:
        raise InvalidArgument(f'unknown field(s) {", ".join(unknown)}; send {{"content": "..."}}')
    content = text_field(body, "content") or ""
    user_id, chat_id = _ids(request)
    return await respond_turn(
        request, _service(request).turn(user_id, chat_id, content, create_missing=False)
    )
