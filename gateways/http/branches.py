"""The /v1 branch routes: regenerate, edit, switch the active leaf, rename, a path's messages, search."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateways.http import shapes
from gateways.http.answer import respond_turn
from gateways.http.keys import SERVICE
from gateways.http.middleware import read_json, text_field
from gateways.http.responses import json_response
from gateways.service.branching import Branching, PathPage, parsed_id
from store.errors import InvalidArgument
from store.records import SearchHit

routes = web.RouteTableDef()
CHAT = "/v1/users/{user_id}/chats/{chat_id}"
MESSAGE = CHAT + "/messages/{message_id}"


def _branching(request: web.Request) -> Branching:
    service = request.app[SERVICE]
    return Branching(service, service.store)


def _ids(request: web.Request) -> tuple[str, str, int]:
    info = request.match_info
    return info["user_id"], info["chat_id"], parsed_id(info["message_id"])


async def _body(request: web.Request, allowed: set[str]) -> dict[str, object]:
    """The JSON object body (an empty body is `{}`); unknown fields are refused, naming them."""
    body = await read_json(request) if await request.read() else {}
    unknown = sorted(set(body) - allowed)
    if unknown:
        wanted = ", ".join(sorted(allowed)) or "none"
        raise InvalidArgument(f"unknown field(s) {', '.join(unknown)}; allowed: {wanted}")
    return body


@routes.post(MESSAGE + "/regenerate")
async def regenerate(request: web.Request) -> web.StreamResponse:
    await _body(request, set())
    user_id, chat_id, message_id = _ids(request)
    return await respond_turn(request, _branching(request).regenerate(user_id, chat_id, message_id))


@routes.post(MESSAGE + "/edit")
async def edit(request: web.Request) -> web.StreamResponse:
    body = await _body(request, {"content"})
    content = text_field(body, "content") or ""
    user_id, chat_id, message_id = _ids(request)
    return await respond_turn(request, _branching(request).edit(user_id, chat_id, message_id, content))


@routes.put(CHAT + "/leaf")
async def switch(request: web.Request) -> web.Response:
    body = await _body(request, {"message_id"})
    message_id = body.get("message_id")
    if message_id is None:
        raise InvalidArgument("message_id is required")
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        raise InvalidArgument("message_id must be a whole number")
    info = request.match_info
    record, window = await _branching(request).switch(info["user_id"], info["chat_id"], message_id)
    return json_response(shapes.chat(record, window))


@routes.patch(CHAT)
async def rename(request: web.Request) -> web.Response:
    body = await _body(request, {"title"})
    title = text_field(body, "title") or ""
    info = request.match_info
    record, window = await _branching(request).rename(info["user_id"], info["chat_id"], title)
    return json_response(shapes.chat(record, window))


async def list_path(request: web.Request) -> web.Response:
    q = request.query
    raw_leaf = q.get("leaf", "")
    page = await _branching(request).path(
        request.match_info["user_id"],
        request.match_info["chat_id"],
        leaf=parsed_id(raw_leaf, "leaf") if raw_leaf else None,
        include_erased=shapes.flag(q.get("include_erased"), "include_erased"),
        page_size=shapes.page_size(q.get("page_size")),
        page_token=q.get("page_token", ""),
    )
    return json_response({"messages": _messages(page), "next_page_token": page.next_page_token})


async def search(request: web.Request) -> web.Response:
    q = request.query
    hits, token = await _branching(request).search(
        request.match_info["user_id"], q["q"], shapes.page_size(q.get("page_size")), q.get("page_token", "")
    )
    return json_response({"chats": [_hit(h) for h in hits], "next_page_token": token})


def _messages(page: PathPage) -> list[dict[str, Any]]:
    shown = []
    for m in page.messages:
        s = page.siblings.get(m.seq)
        ids, position = (list(s.ids), s.position) if s else ([m.seq], 1)
        siblings = {"ids": ids, "position": position, "count": len(ids)}
        shown.append({**shapes.message(m), "siblings": siblings})
    return shown


def _hit(hit: SearchHit) -> dict[str, Any]:
    body = shapes.chat(hit.chat)
    if hit.seq is not None:
        body["snippet"] = hit.snippet
    return body
