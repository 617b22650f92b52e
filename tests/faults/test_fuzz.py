"""Fault scenario 6, bad input: hypothesis against every HTTP route, the webhook and every RPC.

One real `chatservice serve` (MariaDB, the session Ray, the fake LLM) takes generated path
segments, queries, headers, JSON and raw bodies, Twilio forms and protobuf messages: never a 5xx,
UNKNOWN, INTERNAL or UNAVAILABLE, never a crash, never a stored half-record. What was sent and
what came back goes to artifacts/faults/fuzz.json. FUZZ_EXAMPLES=n runs n examples per target.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from gateways.rpc.gen import chat_pb2
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as v1
from gateways.whatsapp import rules as whatsapp
from store import DatabaseURL
from tests.conftest import free_port, repo_root
from tests.faults.fuzz_support import (
    BAD_AUTH,
    GOOD_AUTH,
    GRPC_BAD_AUTH,
    GRPC_GOOD_AUTH,
    MODELS,
    SEGMENT_MODES,
    TOKEN,
    TWILIO_TOKEN,
    Reply,
    Rpc,
    Strategy,
    Tally,
    World,
    bodies,
    crashes,
    field_values,
    fresh_ids,
    fuzz_settings,
    grpc_metadata,
    headers,
    ids,
    messages,
    page_tokens,
    queries,
    segment,
    send,
    stored_violations,
    text,
    weighted,
)
from tests.http_support import parse_events
from tests.llm_server import Behaviour, FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.ray, pytest.mark.timeout(600)]
MAX_BODY_BYTES = 32768
MAX_MESSAGE_CHARS = 2000
GRPC_MAX_RECEIVE = MAX_MESSAGE_CHARS * 4 + 65536  # what gateways/rpc/server.py allows
CHATS = "/v1/users/{user_id}/chats"
CHAT = CHATS + "/{chat_id}"
MESSAGES = CHAT + "/messages"


@dataclass
class Fuzz:
    serve: ServeProcess
    world: World
    tally: Tally
    channel: grpc.Channel
    public_url: str

    def http(self, target: str, method: str, path: str, body: bytes | None, hdrs: dict[str, str]) -> Reply:
        """Send one request; fail on any 5xx, or a 4xx that is not the JSON error shape."""
        started = time.monotonic()
        reply = send(self.serve.web_port, method, path, body, hdrs)
        self.tally.count(target, _outcome(reply), time.monotonic() - started)
        assert reply.status < 500, (method, path, body, hdrs, reply)
        assert reply.status < 400 or _refused_by_parser(reply) or _error_code(reply), (method, path, reply)
        return reply

    def run(self, target: str, examples: int, strategy: Strategy, check: Callable[[Any], None]) -> None:
        """Fuzz one target with `examples` (or FUZZ_EXAMPLES) derandomized examples."""
        settings = fuzz_settings(examples)

        @settings
        @given(strategy)
        def fuzz_target(case: Any) -> None:
            check(case)

        started = time.monotonic()
        try:
            fuzz_target()
        finally:
            self.tally.ran(target, settings.max_examples, time.monotonic() - started)

    def owned(self) -> Strategy:
        """A chat a response confirmed, with its owner: (user_id, chat_id)."""
        return st.sampled_from(sorted((user, chat) for chat, user in self.world.owners.items()))


def _refused_by_parser(reply: Reply) -> bool:
    """aiohttp's HTTP parser answers a malformed request (URL too long...) itself: a plain-text 400."""
    return reply.status == 400 and reply.content_type.startswith("text/plain")


def _error_code(reply: Reply) -> str | None:
    """The code of a `{"error": {"code", "message"}}` JSON body, else None."""
    if not reply.content_type.startswith("application/json"):
        return None
    error = json.loads(reply.body).get("error")
    ok = (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    )
    return error["code"] if ok else None


def _outcome(reply: Reply) -> str:
    if _refused_by_parser(reply):
        return "400 parser"
    code = _error_code(reply) if reply.status >= 400 else None
    return f"{reply.status} {code}" if code else str(reply.status)


@pytest.fixture(scope="module")
def fuzz(
    request: pytest.FixtureRequest, ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM
) -> Iterator[Fuzz]:
    llm_server.behaviour = Behaviour()
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    world, tally = World(), Tally()
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-fuzz",
        "OPENAI_BASE_URL": llm_server.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "RAY_NAMESPACE": f"fuzz-{world.run}",
        "AUTH_TOKEN": TOKEN,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PUBLIC_URL": public_url,
        "WEB_SERVER_PORT": str(port),
        "CHAT_TURNS_PER_MINUTE": "0",
        "USER_TURNS_PER_MINUTE": "0",
        "MAX_MESSAGE_CHARS": str(MAX_MESSAGE_CHARS),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "MAX_LIVE_CHATS": "32",
        "CHAT_IDLE_SECONDS": "10",
    }
    started = time.monotonic()
    with ServeProcess(env) as serve, grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        f = Fuzz(serve, world, tally, channel, public_url)
        seed(f)
        yield f
    tally.checks["serve_exit_code"] = serve.proc.returncode if serve.proc else None
    report = tally.report(time.monotonic() - started)
    out = repo_root() / "artifacts" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    (reporter.write_line if reporter is not None else print)(tally.summary(report))


def seed(f: Fuzz) -> None:
    """A few real users and chats, each with a turn, for the fuzz to use, near-miss and attack."""
    w = f.world
    w.users = [f"fuzz-{w.run}-ana", f"fuzz-{w.run}-bruno", f"whatsapp:+5511{random.randrange(10**8, 10**9)}"]
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for user in w.users:
        w.sent_users.add(user)
        for _ in range(2):
            reply = f.http("seed", "POST", f"/v1/users/{segment(user, 'quoted')}/chats", b"{}", auth)
            assert reply.status == 201, reply
            chat_id = json.loads(reply.body)["chat_id"]
            w.created(chat_id, user)
            path = f"/v1/users/{segment(user, 'quoted')}/chats/{chat_id}/messages"
            reply = f.http("seed", "POST", path, json.dumps({"content": "Olá, tudo bem?"}).encode(), auth)
            assert reply.status == 200, reply
            w.turn(chat_id, user)


# -- HTTP: every route of the README's table ---------------------------------------------------------

Accept = Callable[[World, Reply, dict[str, str], Any, dict[str, str]], None]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    examples: int
    accept: Accept  # checks a 2xx answer: (world, reply, ids the route surely saw, JSON sent, headers)
    query: bool = False
    fields: Callable[[Fuzz], dict[str, Strategy]] | None = None  # the JSON body's fields, if any
    required: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"http {self.method} {self.template}"


def _json(reply: Reply) -> Any:
    assert reply.content_type.startswith("application/json"), reply
    return json.loads(reply.body)


def _chat_doc(
    doc: dict[str, Any], exact: dict[str, str], keys: tuple[str, ...] = ("user_id", "chat_id")
) -> None:
    assert {"chat_id", "user_id", "status", "title", "params", "created_at"} <= set(doc), doc
    for key in keys:
        assert key not in exact or doc[key] == exact[key], (key, exact, doc)


def created(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    doc = _json(reply)
    _chat_doc(doc, exact, ("user_id",))
    w.created(doc["chat_id"], doc["user_id"])


def listed_chats(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    doc = _json(reply)
    assert isinstance(doc["next_page_token"], str)
    for chat in doc["chats"]:
        _chat_doc(chat, exact, ("user_id",))  # only the user's own chats, exactly


def got(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    doc = _json(reply)
    _chat_doc(doc, exact)
    assert set(doc["window"]) == {
        "messages",
        "tokens",
        "context_tokens",
        "server_prompt_tokens",
        "correction",
    }


def ended(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    doc = _json(reply)
    _chat_doc(doc, exact)
    assert doc["status"] == "ended"


def deleted(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    assert reply.status == 204 and reply.body == b""
    w.deleted_chat(exact.get("chat_id"))


def listed_messages(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    doc = _json(reply)
    seqs = [m["message_id"] for m in doc["messages"]]
    assert seqs == sorted(set(seqs)) and isinstance(doc["next_page_token"], str), doc


def answered(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    """A turn on /v1: the whole answer as JSON, or start, deltas and end as Server-Sent Events."""
    content = sent["content"]
    assert isinstance(content, str) and content.strip(), sent
    if reply.content_type.startswith("text/event-stream"):
        assert "event-stream" in hdrs.get("Accept", ""), hdrs
        events = parse_events(reply.body)
        names = [name for name, _ in events]
        assert names[0] == "start" and names[-1] == "end" and set(names[1:-1]) <= {"delta"}, names
        assert "".join(d["text"] for n, d in events if n == "delta") == f"Echo: {content}"
        chat_id = events[0][1]["chat_id"]
    else:
        doc = _json(reply)
        assert doc["content"] == f"Echo: {content}" and doc["user_message_id"] < doc["assistant_message_id"]
        usage = doc["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], doc
        chat_id = doc["chat_id"]
    w.turn(chat_id, exact.get("user_id", ""))


def answered_whole(w: World, reply: Reply, exact: dict[str, str], sent: Any, hdrs: dict[str, str]) -> None:
    """POST /chat: the original service's answer, whole."""
    doc = _json(reply)
    assert doc["user_id"] == sent["user_id"] and doc["content"] == f"Echo: {sent['user_message']}", doc
    assert not sent.get("chat_id") or doc["chat_id"] == sent["chat_id"], doc
    w.turn(doc["chat_id"], doc["user_id"])


def create_fields(f: Fuzz) -> dict[str, Strategy]:
    huge = st.integers(10**308, 10**400)
    numbers = field_values(
        st.one_of(st.floats(), st.integers(), huge, st.sampled_from([0, 0.5, 1, 2, -2, 1024]))
    )
    return {
        "chat_id": field_values(ids(sorted(f.world.owners))),
        "model": field_values(st.one_of(st.sampled_from(MODELS), text())),
        "system_prompt": field_values(text()),
        "stop": field_values(st.lists(text(), max_size=6)),
        **{
            k: numbers
            for k in ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")
        },
    }


def chat_fields(f: Fuzz) -> dict[str, Strategy]:
    return {
        "user_id": field_values(ids(f.world.users)),
        "user_message": field_values(text()),
        "chat_id": field_values(ids(sorted(f.world.owners))),
    }


ROUTES = (
    Route("POST", CHATS, 60, created, fields=create_fields),
    Route("GET", CHATS, 50, listed_chats, query=True),
    Route("GET", CHAT, 40, got),
    Route("GET", MESSAGES, 40, listed_messages, query=True),
    Route(
        "POST",
        MESSAGES,
        80,
        answered,
        fields=lambda f: {"content": field_values(text())},
        required=("content",),
    ),
    Route("POST", "/chat", 60, answered_whole, fields=chat_fields, required=("user_id", "user_message")),
    Route("POST", CHAT + "/end", 30, ended),
    Route("DELETE", CHAT, 30, deleted),
)


def _exact(raw: str, seg: str) -> bool:
    """The route surely sees `raw` for this segment (no '/' or dot segment that routing would change)."""
    return raw not in ("", ".", "..") and "/" not in raw and unquote(seg) == raw


def path_cases(f: Fuzz, template: str) -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """The template with fuzzed {user_id} and {chat_id}, and the ids the route surely sees."""
    pairs = weighted((1, f.owned()), (1, st.tuples(ids(f.world.users), ids(sorted(f.world.owners)))))

    def fill(pair: tuple[str, str], mode_u: str, mode_c: str) -> tuple[str, dict[str, str]]:
        segs = {"user_id": segment(pair[0], mode_u), "chat_id": segment(pair[1], mode_c)}
        path = template.format(**segs)
        return path, {k: raw for k, raw in zip(segs, pair, strict=True) if _exact(raw, segs[k])}

    return st.builds(fill, pairs, SEGMENT_MODES, SEGMENT_MODES)


def _sent_json(body: bytes | None, hdrs: dict[str, str]) -> Any:
    """The JSON the service read from this body: decoded in the declared charset, as aiohttp does."""
    charset = re.search(r"charset=([^;\s]+)", hdrs.get("Content-Type", ""))
    try:
        return json.loads((body or b"").decode(charset.group(1) if charset else "utf-8"))
    except (ValueError, LookupError):
        return None


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_http_route(fuzz: Fuzz, route: Route) -> None:
    """Any ids (percent-encoded or raw), query, body and headers: a 2xx that is right, or a JSON 4xx."""
    f = fuzz
    body = (
        bodies(route.fields(f), route.required)
        if route.fields
        else st.one_of(st.none(), st.binary(max_size=50))
    )
    case = st.tuples(
        path_cases(f, route.template), queries() if route.query else st.just(""), body, headers()
    )

    def check(case: Any) -> None:
        (path, exact), query, body, hdrs = case
        sent = _sent_json(body, hdrs)
        for user in (exact.get("user_id"), sent.get("user_id") if isinstance(sent, dict) else None):
            if isinstance(user, str):
                f.world.sent_users.add(user)
        reply = f.http(str(route), route.method, path + query, body, hdrs)
        auth = hdrs.get("Authorization")
        if auth in BAD_AUTH and not _refused_by_parser(reply):
            assert reply.status == 401, (path, hdrs, reply)
        if auth in GOOD_AUTH:
            assert reply.status != 401, (path, hdrs, reply)
        if 200 <= reply.status < 300:
            route.accept(f.world, reply, exact, sent, hdrs)

    f.run(str(route), route.examples, case, check)


def test_public_and_unknown_routes(fuzz: Fuzz) -> None:
    """Health, readiness and the OpenAPI document with any method; any other path with any method."""
    f = fuzz
    methods = st.sampled_from(("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
    public = st.sampled_from(("/healthz", "/readyz", "/v1/openapi.json"))

    def check_public(case: Any) -> None:
        method, path, query, hdrs = case
        reply = f.http("http public routes", method, path + query, None, hdrs)
        if not _refused_by_parser(reply):
            assert reply.status == (200 if method == "GET" else 405), (method, path, reply)
        if reply.status == 200:
            assert _json(reply) == {"status": "ok"} if path == "/healthz" else _json(reply)

    f.run("http public routes", 40, st.tuples(methods, public, queries(), headers()), check_public)
    prefixes = st.sampled_from(("", "/v1", "/v1/users", "/v1/users/x/chats/y/messages", "/twilio", "/chat"))
    segments = st.lists(st.tuples(text(600), SEGMENT_MODES).map(lambda t: segment(*t)), max_size=6)
    paths = st.builds(lambda p, s: p + "/" + "/".join(s), prefixes, segments)
    bodies_ = st.one_of(st.none(), st.binary(max_size=200))

    def check_any(case: Any) -> None:
        method, path, query, body, hdrs = case
        f.http("http any path", method, path + query, body, hdrs)

    f.run("http any path", 60, st.tuples(methods, paths, queries(), bodies_, headers()), check_any)


# -- the WhatsApp webhook --------------------------------------------------------------------------

WEBHOOK = "/twilio/whatsapp"
TWILIO_FIELDS = ("MessageSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "WaId")
REPLIES = (whatsapp.FAILED_REPLY, whatsapp.NEW_CHAT_REPLY, whatsapp.MEDIA_REPLY)
FORM_TYPES = ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8")
OTHER_TYPES = (
    None,
    "application/x-www-form-urlencoded; charset=bogus",
    "multipart/form-data; boundary=z",
    "text/plain",
)
SIGNINGS = ("good", "good", "good", "none", "garbage", "other-token", "other-url", "other-form")


def _signature(how: str, url: str, form: dict[str, str]) -> str | None:
    if how == "none":
        return None
    if how == "garbage":
        return "c2lnbmF0dXJl"
    token = "not-the-token" if how == "other-token" else TWILIO_TOKEN
    url = url + "x" if how == "other-url" else url
    form = form | {"Body": form.get("Body", "") + "!"} if how == "other-form" else form
    return str(RequestValidator(token).compute_signature(url, form))


def _twiml_parts(reply: Reply) -> list[str]:
    assert reply.content_type.startswith("text/xml"), reply
    root = ET.fromstring(reply.body)
    assert root.tag == "Response", reply
    return [m.text or "" for m in root.findall("Message")]


def test_whatsapp_webhook(fuzz: Fuzz) -> None:
    """Random form fields, signed right or wrong: never a 5xx; unsigned always 403."""
    f, w = fuzz, fuzz.world
    fields = {
        "MessageSid": weighted((3, fresh_ids("SM")), (1, text())),
        "AccountSid": weighted((3, st.just("AC" + "0" * 32)), (1, text())),
        "From": ids([u for u in w.users if u.startswith("whatsapp:")]),
        "To": weighted((3, st.just("whatsapp:+14155238886")), (1, text())),
        "Body": st.one_of(text(2000), st.sampled_from(("/new", "novo", " /NEW "))),
        "NumMedia": weighted((3, st.just("0")), (1, st.one_of(st.sampled_from(("1", "", " 0 ")), text()))),
    }
    delivery = weighted(  # mostly what Twilio posts; else any subset, with any extra fields
        (3, st.fixed_dictionaries(fields)),
        (1, st.fixed_dictionaries({}, optional=fields)),
    )
    extra = st.dictionaries(
        st.one_of(st.sampled_from(TWILIO_FIELDS), st.text(max_size=10)), text(), max_size=4
    )
    forms = st.tuples(delivery, weighted((2, st.just({})), (1, extra))).map(lambda t: t[1] | t[0])
    types = weighted((3, st.sampled_from(FORM_TYPES)), (1, st.sampled_from(OTHER_TYPES)))
    query = st.sampled_from(("", "?a=1", "?From=whatsapp%3A%2B1"))

    def check(case: Any) -> None:
        form, how, content_type, query = case
        body = urlencode(form).encode()
        signature = _signature(how, f.public_url + WEBHOOK + query, form)
        hdrs = {k: v for k, v in (("Content-Type", content_type), ("X-Twilio-Signature", signature)) if v}
        if isinstance(form.get("From"), str):
            w.sent_users.add(form["From"])
        reply = f.http("webhook POST /twilio/whatsapp", "POST", WEBHOOK + query, body, hdrs)
        if how == "none":
            assert reply.status == 403, (content_type, form, reply)  # unsigned: refused before reading
        elif how != "good":
            assert reply.status == (413 if len(body) > MAX_BODY_BYTES else 403), (how, form, reply)
        elif content_type not in FORM_TYPES:  # then what was signed is not what the service reads
            assert reply.status in (400, 403, 413), (content_type, form, reply)  # 400: an empty form
        else:
            assert reply.status in (200, 400, 413), (form, reply)
        if reply.status == 200:
            parts = _twiml_parts(reply)
            answer, asked = "".join("".join(parts).split()), "".join(str(form.get("Body", "")).split())
            assert parts == [] or parts[0] in REPLIES or answer == "Echo:" + asked, (form, parts)

    f.run(
        "webhook POST /twilio/whatsapp", 80, st.tuples(forms, st.sampled_from(SIGNINGS), types, query), check
    )


# -- gRPC: every RPC of both chat services ------------------------------------------------------------

BAD_CODES = {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"}
RPCS = [
    Rpc.of(m)
    for d in (chat_pb2.DESCRIPTOR, v1.DESCRIPTOR)
    for s in d.services_by_name.values()
    for m in s.methods
]


def _rpc_succeeded(rpc: Rpc, request: Any, received: list[Any], w: World) -> None:
    """What a successful call must have returned, and what it changed."""
    name = rpc.path.rsplit("/", 1)[-1]
    if name == "ChatStream":
        contents = [r.content for r in received]
        assert contents and all(b.startswith(a) for a, b in itertools.pairwise(contents))
        assert contents[-1] == f"Echo: {request.user_message}" and len({r.chat_id for r in received}) == 1
        w.turn(received[0].chat_id, request.user_id)
    elif name == "SendMessage":
        kinds = [e.WhichOneof("event") for e in received]
        assert kinds[0] == "started" and kinds[-1] == "finished" and set(kinds[1:-1]) <= {"delta"}, kinds
        assert "".join(e.delta.text for e in received[1:-1]) == f"Echo: {request.content}"
        w.turn(received[0].started.chat_id, request.user_id)
    elif name == "CreateChat":
        assert received[0].user_id == request.user_id
        w.created(received[0].chat_id, request.user_id)
    elif name in ("GetChat", "EndChat"):
        assert (received[0].user_id, received[0].chat_id) == (request.user_id, request.chat_id)
    elif name == "ListChats":
        assert {c.user_id for c in received[0].chats} <= {request.user_id}, received[0]
    elif name == "DeleteChat":
        w.deleted_chat(request.chat_id)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.path)
def test_grpc_rpc(fuzz: Fuzz, rpc: Rpc) -> None:
    """Hypothesis-built messages (any value in every field, or none) with and without the token."""
    f, w = fuzz, fuzz.world
    by_name = {
        "user_id": ids(w.users),
        "chat_id": ids(sorted(w.owners)),
        "model": st.one_of(st.sampled_from(MODELS), text()),
        "page_token": page_tokens(),
    }
    pairs = weighted((1, f.owned()), (2, st.none()))  # sometimes a real chat with its owner, to get deep

    def check(case: Any) -> None:
        request, metadata, pair = case
        if pair is not None and "chat_id" in request.DESCRIPTOR.fields_by_name:
            request.user_id, request.chat_id = pair
        w.sent_users.add(request.user_id)
        started = time.monotonic()
        code, received = rpc.call(f.channel, request, metadata)
        f.tally.count(f"grpc {rpc.path}", code, time.monotonic() - started)
        assert code not in BAD_CODES, (rpc.path, request, code)
        given_token = dict(metadata).get("authorization")
        if request.ByteSize() > GRPC_MAX_RECEIVE:  # refused by gRPC itself, before any token check
            assert code == "RESOURCE_EXHAUSTED", (rpc.path, code)
        elif given_token in GRPC_BAD_AUTH:
            assert code == "UNAUTHENTICATED", (rpc.path, metadata, code)
        elif given_token in GRPC_GOOD_AUTH and code == "OK":
            _rpc_succeeded(rpc, request, received, w)

    requests = weighted((1, st.builds(rpc.request)), (9, messages(rpc.request, by_name, ("user_id",))))
    case = st.tuples(requests, grpc_metadata(), pairs)
    f.run(f"grpc {rpc.path}", 50 if rpc.streaming else 30, case, check)


def test_grpc_bytes_that_are_no_message(fuzz: Fuzz) -> None:
    """Bytes that do not parse as the request (bad wire format, bad UTF-8): INVALID_ARGUMENT."""
    f = fuzz
    known = (b"\x0a\x02\xff\xfe", b"\x12\x03\xc3\x28\x41", b"\x08\x01", b"\x0a\x05ab", b"\x1a\xff")
    wire = st.one_of(st.binary(max_size=64), st.sampled_from(known))

    def check(case: Any) -> None:
        rpc, raw = case
        code, _ = rpc.call(f.channel, raw, (("authorization", TOKEN),))
        f.tally.count("grpc raw bytes", code)
        assert code not in BAD_CODES, (rpc.path, raw, code)

    f.run("grpc raw bytes", 40, st.tuples(st.sampled_from(RPCS), wire), check)


# -- afterwards: still alive, still answering, and nothing half-stored ---------------------------------


def test_after_fuzzing_the_service_is_healthy_and_stored_chats_are_whole(
    fuzz: Fuzz, mysql_url: DatabaseURL
) -> None:
    f, w, serve = fuzz, fuzz.world, fuzz.serve
    assert serve.proc is not None and serve.proc.poll() is None, serve.output()[-5000:]
    for path in ("/healthz", "/readyz"):
        assert send(serve.web_port, "GET", path, None, {}).status == 200
    user = f"fuzz-{w.run}-after"
    auth = {"Authorization": TOKEN, "Content-Type": "application/json"}
    chat_id = json.loads(f.http("after", "POST", f"/v1/users/{user}/chats", b"{}", auth).body)["chat_id"]
    body = json.dumps({"content": "Ainda funciona?"}).encode()
    reply = f.http("after", "POST", f"/v1/users/{user}/chats/{chat_id}/messages", body, auth)
    assert reply.status == 200 and json.loads(reply.body)["content"] == "Echo: Ainda funciona?"
    w.created(chat_id, user)
    w.turn(chat_id, user)
    w.sent_users.add(user)
    request = v1.SendMessageRequest(user_id=user, chat_id=chat_id, content="E pelo gRPC?")
    code, events = Rpc.of(v1.DESCRIPTOR.services_by_name["ChatService"].methods_by_name["SendMessage"]).call(
        f.channel, request, (("authorization", TOKEN),)
    )
    assert code == "OK" and "".join(e.delta.text for e in events) == "Echo: E pelo gRPC?", (code, events)
    w.turn(chat_id, user)

    violations = asyncio.run(stored_violations(mysql_url, w, f.tally))
    f.tally.checks["violations"] = violations
    assert not violations, violations
    crashed = crashes(serve.output())
    f.tally.checks["tracebacks_in_serve_log"] = len(crashed)
    assert not crashed, "\n".join(crashed)[:8000]
