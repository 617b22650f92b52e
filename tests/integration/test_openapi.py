"""The OpenAPI document is valid, covers every route, and real requests and responses conform to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate as validate_document
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from gateways.http.v1 import openapi_document
from store import DatabaseURL
from tests.http_support import MakeClient, app_clients, parse_events
from tests.llm_server import FakeLLM

DOC: dict[str, Any] = json.loads(openapi_document())
DOC_URI = "urn:chatservice:openapi"
TOKEN = {"Authorization": "Bearer tok"}
REGISTRY: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(DOC))


def event_schema(name: str) -> Draft202012Validator:
    """A validator for one component schema (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    return Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/{name}"}, registry=REGISTRY)


class Conformance:
    """Sends requests through the test client and checks each request and response against DOC."""

    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client
        self.api = OpenAPI.from_dict(DOC)
        self.checked: list[tuple[str, str, int]] = []

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        valid: bool = True,
    ) -> tuple[ClientResponse, bytes]:
        """One call; `valid=False` for a request the document itself rejects (its 400 is still checked)."""
        headers = {**TOKEN, **(headers or {})}
        data = None if json_body is None else json.dumps(json_body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        r = await self.client.request(method, path, data=data, headers=headers)
        raw = await r.read()
        url = urlsplit(path)
        request = MockRequest(
            "http://localhost",
            method.lower(),
            url.path,
            args=dict(r.request_info.url.query),
            headers=headers,
            data=data,
            content_type=headers.get("Content-Type", ""),
        )
        media = r.content_type
        body: Any = raw.decode() if media.startswith("text/") else raw
        response = MockResponse(body, r.status, headers=dict(r.headers), content_type=media)
        if valid:
            self.api.validate_request(request)
        else:
            with pytest.raises(OpenAPIError):
                self.api.validate_request(request)
        self.api.validate_response(request, response)
        self.checked.append((method, url.path, r.status))
        return r, raw


@pytest.fixture
async def make_client(db_url: DatabaseURL, fake_llm: FakeLLM) -> AsyncIterator[MakeClient]:
    async with app_clients(db_url, fake_llm) as make:
        yield make


def test_the_document_is_valid_openapi_3_1() -> None:
    validate_document(DOC)
    assert DOC["openapi"].startswith("3.1")


async def test_every_route_is_documented_and_every_documented_route_exists(make_client: MakeClient) -> None:
    client = await make_client(TWILIO_AUTH_TOKEN="t")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    served.discard(("post", "/twilio/whatsapp"))  # Twilio's form protocol, documented in the README
    served.discard(("post", "/twilio/whatsapp/status"))  # its status callbacks, likewise
    documented = {
        (method, path) for path, item in DOC["paths"].items() for method in item if method != "parameters"
    }
    assert served == documented


async def test_real_responses_conform_to_the_document(make_client: MakeClient, fake_llm: FakeLLM) -> None:
    client = await make_client(AUTH_TOKEN="tok", MAX_MESSAGE_CHARS="200", MAX_BODY_BYTES="2048")
    c = Conformance(client)
    user = f"Ana Maria {uuid.uuid4().hex[:6]}"
    chats = f"/v1/users/{quote(user, safe='')}/chats"

    r, raw = await c.call(
        "POST", chats, json_body={"temperature": 0.3, "stop": ["FIM"], "system_prompt": "Seja breve."}
    )
    assert r.status == 201
    chat_id = json.loads(raw)["chat_id"]
    chat = f"{chats}/{chat_id}"
    await c.call("POST", chats)  # no body: every default
    assert (await c.call("GET", chats, headers={}))[0].status == 200
    assert (await c.call("GET", chats + "?page_size=1"))[0].status == 200
    assert (await c.call("GET", chat))[0].status == 200
    r, raw = await c.call("POST", f"{chat}/messages", json_body={"content": "Olá 👋"})
    assert r.status == 200 and json.loads(raw)["content"] == "Echo: Olá 👋"
    r, raw = await c.call(
        "POST", f"{chat}/messages", json_body={"content": "E agora?"}, headers={"Accept": "text/event-stream"}
    )
    events = parse_events(raw)
    schemas = {"start": "TurnStart", "delta": "TurnDelta", "end": "TurnEnd", "error": "TurnError"}
    for name, data in events:
        event_schema(schemas[name]).validate(data)
    assert [n for n, _ in events][:: len(events) - 1] == ["start", "end"]
    assert (await c.call("GET", f"{chat}/messages?include_erased=true&page_size=2"))[0].status == 200

    fake_llm.behaviour.failures.extend([429, 429, 429])
    assert (await c.call("POST", f"{chat}/messages", json_body={"content": "hi"}))[0].status == 429
    fake_llm.behaviour.failures.extend([500, 500, 500])
    assert (await c.call("POST", f"{chat}/messages", json_body={"content": "hi"}))[0].status == 503
    fake_llm.behaviour.failures.append("cut:1")  # a cut stream is not retried
    r, raw = await c.call(
        "POST", f"{chat}/messages", json_body={"content": "hi"}, headers={"Accept": "text/event-stream"}
    )
    name, data = parse_events(raw)[-1]
    assert name == "error"
    event_schema("TurnError").validate(data)

    assert (await c.call("POST", f"{chat}/messages", json_body={"content": "x" * 300}))[0].status == 413
    assert (await c.call("POST", chats, json_body={"system_prompt": "x" * 3000}))[0].status == 413
    assert (await c.call("POST", chats, json_body={"temperature": 9}, valid=False))[0].status == 400
    assert (await c.call("POST", chats, json_body={"chat_id": chat_id}))[0].status == 409
    assert (await c.call("GET", f"/v1/users/someone-else/chats/{chat_id}"))[0].status == 403
    assert (await c.call("GET", f"{chats}/missing-{uuid.uuid4().hex}"))[0].status == 404
    assert (await c.call("POST", f"{chat}/end"))[0].status == 200
    assert (await c.call("POST", f"{chat}/messages", json_body={"content": "hi"}))[0].status == 409
    assert (await c.call("DELETE", chat))[0].status == 204

    r = await client.get(chats)  # no token: the document says 401 with the error shape
    assert r.status == 401
    request = MockRequest("http://localhost", "get", urlsplit(chats).path, headers=TOKEN)
    c.api.validate_response(request, MockResponse(await r.read(), 401))

    assert (await c.call("POST", "/chat", json_body={"user_id": user, "user_message": "oi"}))[0].status == 200
    for path in ("/healthz", "/readyz", "/v1/openapi.json"):
        assert (await c.call("GET", path))[0].status == 200
    statuses = {status for _, _, status in c.checked}
    assert {200, 201, 204, 400, 403, 404, 409, 413, 429, 503} <= statuses


async def test_branch_responses_conform_to_the_document(make_client: MakeClient) -> None:
    client = await make_client(AUTH_TOKEN="tok")
    c = Conformance(client)
    chats = f"/v1/users/u-{uuid.uuid4().hex[:8]}/chats"
    _, raw = await c.call("POST", chats, json_body={})
    chat = f"{chats}/{json.loads(raw)['chat_id']}"
    await c.call("POST", f"{chat}/messages", json_body={"content": "Olá quokka"})
    assert (await c.call("POST", f"{chat}/messages/3/regenerate", json_body={}))[0].status == 200
    _, raw = await c.call(
        "POST",
        f"{chat}/messages/2/edit",
        json_body={"content": "Oi"},
        headers={"Accept": "text/event-stream"},
    )
    assert [n for n, _ in parse_events(raw)][-1] == "end"
    assert (await c.call("PUT", f"{chat}/leaf", json_body={"message_id": 2}))[0].status == 200
    assert (await c.call("PATCH", chat, json_body={"title": "Quokkas"}))[0].status == 200
    _, raw = await c.call("GET", f"{chat}/messages?leaf=5")
    assert [m["siblings"]["count"] for m in json.loads(raw)["messages"]] == [1, 2, 1]
    _, raw = await c.call("GET", f"{chats}?q=quokka&page_size=1")
    assert "snippet" in json.loads(raw)["chats"][0]
    assert (await c.call("GET", f"{chats}?q=quokkas"))[0].status == 200
    assert (await c.call("POST", f"{chat}/messages/2/regenerate", json_body={}))[0].status == 400
    assert (await c.call("POST", f"{chat}/messages/99/edit", json_body={"content": "x"}))[0].status == 404
    assert (await c.call("PUT", f"{chat}/leaf", json_body={"message_id": 0}, valid=False))[0].status == 404
    assert (await c.call("PATCH", chat, json_body={"title": ""}, valid=False))[0].status == 400
