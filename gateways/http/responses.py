"""JSON bodies as UTF-8 text (accents as themselves, not \\u escapes), for every JSON answer and event."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

COMPACT = (",", ":")
JSON = "application/json"


def json_bytes(data: Any, separators: tuple[str, str] | None = None) -> bytes:
    """UTF-8 JSON. A lone surrogate (half an emoji, as some LLM servers stream it) cannot be UTF-8,
    so such a body is escaped as ASCII JSON instead: still valid, and the client joins the halves."""
    try:
        return json.dumps(data, ensure_ascii=False, separators=separators).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, separators=separators).encode("ascii")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json_bytes(data), status=status, headers=headers, content_type=JSON, charset="utf-8"
    )
