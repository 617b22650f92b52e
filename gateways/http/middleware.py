"""Auth (constant-time token check) and the translation of errors into JSON responses."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from gateways import logs
from gateways.auth import token_matches
from gateways.http.errors import error_body, http_status
from gateways.http.keys import SETTINGS
from gateways.http.responses import json_response
from store.errors import (
    ChatServiceError,
    InvalidArgument,
    MessageTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
)

log = logging.getLogger("chatservice.http")
PUBLIC = web.AppKey("public_paths", frozenset[str])
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The caller's X-Request-Id (or a new one) on every log line of this request, and echoed back."""
    rid = logs.request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    logs.bind(request_id=rid, chat_id=None, turn_id=None)
    return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: runs for streamed (SSE) responses too, before their headers go out."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ChatServiceError as exc:
        status = http_status(exc)
        if status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.path, status, exc.message)
        return json_response(error_body(exc), status=status)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return _as_json(MessageTooLarge(f"request body is larger than {limit} bytes"))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_response(
                {"error": {"code": exc.reason.lower().replace(" ", "_"), "message": exc.reason}},
                status=exc.status,
                headers={k: v for k, v in exc.headers.items() if k == "Allow"},
            )
        raise


def _as_json(exc: ChatServiceError) -> web.Response:
    return json_response(error_body(exc), status=http_status(exc))


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.app[SETTINGS].auth_token
    public = request.path in request.app[PUBLIC]
    if token is not None and not public and not token_matches(request.headers.get("Authorization"), token):
        raise Unauthenticated("missing or wrong token: send 'Authorization: <token>'")
    return await handler(request)


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_json(request: web.Request) -> dict[str, object]:
    """The body as a JSON object, or InvalidArgument saying what is wrong with it.

    A JSON content type is required: a page on another site can post `text/plain` or a form
    without asking first, but not `application/json`.
    """
    if not is_json(request.content_type):
        raise UnsupportedMediaType("send the body as JSON, with 'Content-Type: application/json'")
    try:
        body = await request.json()
    except (ValueError, LookupError):  # LookupError: a charset Python does not know
        raise InvalidArgument("body is not valid JSON") from None
    except RecursionError:
        raise InvalidArgument("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body must be a JSON object")
    if b"\\u" in await request.read() and not _is_text(body):
        raise InvalidArgument(
            "body is not valid Unicode: it holds a lone surrogate "
            "(half of a character, as when a UTF-16 string is cut in two)"
        )
    return body


def _is_text(body: dict[str, object]) -> bool:
    """A lone \\ud83d escape parses as JSON, but no UTF-8 text (nor database) can hold it."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_field(body: dict[str, object], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgument(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string")
    return value
