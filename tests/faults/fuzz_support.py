"""For the fuzz suite (test_fuzz.py): strategies, raw HTTP and gRPC callers, the tally, stored invariants."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import os
import re
import string
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import asyncmy
import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from actors.branches import renamed_title
from actors.state import chat_title
from gateways.whatsapp import rules as whatsapp
from store import DatabaseURL
from store.errors import InvalidArgument

Strategy = st.SearchStrategy[Any]
TOKEN = "fuzz-token"
TWILIO_TOKEN = "fuzz-twilio-token"
# Derandomized runs draw the same values every time: fresh ids get this run's prefix, or the
# second run would only meet ids (and Twilio MessageSids) the first one already took.
RUN = uuid.uuid4().hex[:8]


# Every target runs this many examples unless FUZZ_EXAMPLES says otherwise (longer local runs).
def fuzz_settings(default: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES") or default),
        deadline=None,
        derandomize=True,  # the same examples on every run, so CI is reproducible
        database=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )


def weighted(*choices: tuple[int, Strategy]) -> Strategy:
    """One of the strategies, picked with these weights (one_of would pick each branch alike)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


# -- text ----------------------------------------------------------------------------------------

PAYLOADS = (
    "",
    " ",
    "' OR 1=1 --",
    "'; DROP TABLE chats; --",
    '" OR ""="',
    "1; SELECT SLEEP(5)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "]]></Message><Message>injected",
    "..",
    "../",
    "../../etc/passwd",
    "%2e%2e%2f",
    "%00",
    "%",
    "%zz",
    "\\",
    "\u202e\u0644\u0627",
    "😀",
    "👨‍👩‍👧‍👦",
    "🇧🇷🇦🇷",
    "e\u0301",
    "null",
    "NaN",
    "-1",
    "{}",
    "[]",
    "\x00",
    "\r\n",
    "/new",
    "whatsapp:+5511999998888",
)
HUGE_UNITS = ("a", "é", "😀", " ", "<b>", "' OR 1=1 --", "\n")


def huge_text(most: int) -> st.SearchStrategy[str]:
    return st.builds(lambda unit, n: unit * n, st.sampled_from(HUGE_UNITS), st.integers(100, most))


def text(huge: int = 30_000) -> st.SearchStrategy[str]:
    """Unicode, empty, huge (up to `huge` repeats), SQL and HTML payloads."""
    return st.one_of(
        st.sampled_from(PAYLOADS),
        st.text(max_size=40),
        st.text(alphabet=string.printable, max_size=40),
        huge_text(huge),
    )


def json_values() -> Strategy:
    """Any JSON value: nested, wrong types, huge integers, NaN and infinities."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(10**300, 10**400),
        st.floats(),
        text(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
        max_leaves=12,
    )


# -- ids -----------------------------------------------------------------------------------------

SUFFIXES = (" ", "  ", "%20", "\t", "/", "/..", ".", "%", "\x00", "' OR 1=1 --", "<b>", "😀", "x" * 200)


def near_misses(known: list[str]) -> Strategy:
    """Real ids with something added or changed: padded, cased, truncated, traversals, injections."""
    base = st.sampled_from(known)
    return st.one_of(
        st.tuples(base, st.sampled_from(SUFFIXES)).map("".join),
        st.tuples(st.sampled_from(SUFFIXES), base).map("".join),
        base.map(str.upper),
        base.map(lambda s: s[:-1]),
    )


def fresh_ids(prefix: str = "") -> st.SearchStrategy[str]:
    """Ids no one has used: this run's prefix and a uuid's hex."""
    return st.uuids().map(lambda u: f"{prefix}{RUN}{u.hex[8:]}")


def ids(known: list[str]) -> Strategy:
    """Known ids (often, to get deep), near misses, fresh valid ids and any text."""
    fresh = fresh_ids()
    return weighted((4, st.sampled_from(known)), (2, near_misses(known)), (1, fresh), (2, text(600)))


# -- HTTP ----------------------------------------------------------------------------------------

GOOD_AUTH = (f"Bearer {TOKEN}", TOKEN, f"bearer {TOKEN}", f"Bearer {TOKEN}  ")
BAD_AUTH = (None, "", "Bearer", "Bearer ", "wrong", "Bearer wrong", TOKEN + "x", "Basic Zm9vOmJhcg==")
CONTENT_TYPES = (
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json; charset=bogus",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zzz",
    "multipart/form-data",
    "text/html; charset=utf-16",
)
ACCEPTS = (None, "application/json", "text/event-stream", "text/event-stream;q=0.9, */*", "*/*", "text/html")
MODELS = ("gpt-4o-mini", "gpt-4", "gpt-3.5-turbo", "o1", "unknown-model", "", " ")
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x20\x7f#?]")


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


class _Conn(http.client.HTTPConnection):
    """http.client that sends a request line with raw UTF-8 (or undecodable bytes) as given."""

    def _encode_request(self, request: str) -> bytes:
        return request.encode("utf-8", "surrogateescape")


def send(port: int, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> Reply:
    conn = _Conn("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        r = conn.getresponse()
        return Reply(r.status, r.getheader("Content-Type") or "", r.read())
    finally:
        conn.close()


def segment(raw: str, mode: str) -> str:
    """A path segment: fully percent-encoded, loosely (traversals and raw % pass), or raw UTF-8."""
    if mode == "quoted":
        return quote(raw, safe="")
    if mode == "loose":
        return quote(raw, safe="/.%:@+=-_~!$&'()*,;")
    return _UNSAFE_IN_PATH.sub(lambda m: quote(m.group()), raw)


SEGMENT_MODES = st.sampled_from(("quoted", "quoted", "loose", "raw"))


def page_tokens() -> st.SearchStrategy[str]:
    """Any text, or tokens shaped like the service's (base64url JSON) holding any values."""
    fields = {"c": st.one_of(st.datetimes().map(datetime.isoformat), json_values()), "i": json_values()}
    payload = st.one_of(st.fixed_dictionaries({}, optional=fields | {"s": json_values()}), json_values())
    token = payload.map(lambda p: base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("="))
    return st.one_of(token, text(600))


def queries() -> st.SearchStrategy[str]:
    keys = st.one_of(st.sampled_from(("page_size", "page_token", "include_erased")), st.text(max_size=8))
    values = st.one_of(
        st.sampled_from(
            ("", "0", "1", "-1", "5", "1000001", "1e3", " 5", "0x10", "١٢", "true", "TRUE", "no")
        ),
        st.integers().map(str),
        text(600),
    )
    pairs = st.lists(
        st.one_of(st.tuples(keys, values), st.tuples(st.just("page_token"), page_tokens())), max_size=4
    )
    return pairs.map(lambda p: ("?" + urlencode(p)) if p else "")


def headers() -> st.SearchStrategy[dict[str, str]]:
    """Token (good, bad, undecodable), Content-Type and Accept, each present or not."""
    auth = weighted(  # mostly the token, so that most requests get past it
        (7, st.sampled_from(GOOD_AUTH)),
        (2, st.sampled_from(BAD_AUTH)),
        (1, st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)),
    )
    return st.builds(
        lambda a, ct, acc: {
            k: v for k, v in (("Authorization", a), ("Content-Type", ct), ("Accept", acc)) if v is not None
        },
        auth,
        st.sampled_from(CONTENT_TYPES),
        st.sampled_from(ACCEPTS),
    )


def encoded(value: Any) -> st.SearchStrategy[bytes]:
    """A JSON value as bytes several ways, some of them broken."""
    doc = json.dumps(value)
    return st.sampled_from(
        (
            doc.encode(),
            json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
            doc.encode("utf-16"),
            doc[: len(doc) // 2].encode(),
            doc.encode() + b"\xff\xfe",
        )
    )


def bodies(fields: Mapping[str, Strategy], required: tuple[str, ...] = ()) -> st.SearchStrategy[bytes | None]:
    """The route's JSON object (often well formed, else wrong types, extra fields, broken encodings),
    any JSON, raw bytes, or no body."""
    shaped = st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in required},
        optional={k: v for k, v in fields.items() if k not in required},
    )
    extras = st.dictionaries(st.text(max_size=12), json_values(), min_size=1, max_size=2)
    return weighted(
        (8, shaped.map(lambda d: json.dumps(d).encode())),
        (1, st.tuples(shaped, extras).map(lambda t: json.dumps(t[0] | t[1]).encode())),
        (1, shaped.flatmap(encoded)),
        (1, json_values().flatmap(encoded)),
        (1, st.binary(max_size=300)),
        (1, text().map(lambda s: s.encode("utf-8", "surrogatepass"))),
        (1, st.none()),
    )


def field_values(good: Strategy) -> Strategy:
    """Mostly a value of the right kind, else any JSON value."""
    return weighted((3, good), (1, json_values()))


# -- gRPC ----------------------------------------------------------------------------------------

GRPC_GOOD_AUTH = (TOKEN, f"Bearer {TOKEN}", f"bearer {TOKEN}")
GRPC_BAD_AUTH = (None, "", "wrong", f"Bearer {TOKEN}x")


def grpc_metadata() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """The `authorization` metadata: mostly the token, else missing, wrong or any printable text."""
    printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
    value = weighted(
        (7, st.sampled_from(GRPC_GOOD_AUTH)), (2, st.sampled_from(GRPC_BAD_AUTH)), (1, printable)
    )
    return value.map(lambda v: (("authorization", v),) if v is not None else ())


def messages(cls: type[Message], by_name: Mapping[str, Strategy], required: tuple[str, ...] = ()) -> Strategy:
    """Instances of a protobuf message with fields set to hypothesis values (`required` ones always)."""
    values = {
        f.name: by_name[f.name] if f.name in by_name else _field(f, by_name) for f in cls.DESCRIPTOR.fields
    }
    always = {k: v for k, v in values.items() if k in required}
    optional = {k: v for k, v in values.items() if k not in required}
    return st.fixed_dictionaries(always, optional=optional).map(lambda kw: cls(**kw))


def _field(f: Any, by_name: Mapping[str, Strategy]) -> Strategy:
    one = _scalar(f, by_name)
    return st.lists(one, max_size=6) if f.is_repeated else one


def _scalar(f: Any, by_name: Mapping[str, Strategy]) -> Strategy:
    kinds: dict[int, Strategy] = {
        FieldDescriptor.TYPE_STRING: text(),
        FieldDescriptor.TYPE_BOOL: st.booleans(),
        FieldDescriptor.TYPE_DOUBLE: st.floats(),
        FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
        FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_ENUM: st.integers(-3, 12),  # proto3 enums are open: unknown numbers too
    }
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(message_factory.GetMessageClass(f.message_type), by_name)
    return kinds[f.type]


@dataclass(frozen=True)
class Rpc:
    """One RPC of a served service, callable with any request of its type (or raw bytes)."""

    path: str
    request: type[Message]
    response: type[Message]
    streaming: bool

    @staticmethod
    def of(method: MethodDescriptor) -> Rpc:
        return Rpc(
            f"/{method.containing_service.full_name}/{method.name}",
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
            method.server_streaming,
        )

    def call(self, channel: grpc.Channel, request: Message | bytes, metadata: Any) -> tuple[str, list[Any]]:
        """(the status code's name, the responses received before it)."""
        received: list[Any] = []
        kind = channel.unary_stream if self.streaming else channel.unary_unary
        stub = kind(self.path, request_serializer=_serialize, response_deserializer=self.response.FromString)
        try:
            if self.streaming:
                received.extend(stub(request, metadata=metadata, timeout=120))
            else:
                received.append(stub(request, metadata=metadata, timeout=120))
        except grpc.RpcError as exc:
            return exc.code().name, received
        return "OK", received


def _serialize(m: Message | bytes) -> bytes:
    return m if isinstance(m, bytes) else m.SerializeToString()


# Client errors aiohttp's HTTP parser rejects (400) are logged with a traceback too; not crashes.
_PARSER_REJECTION = re.compile(r"^aiohttp\.http_exceptions\.\w+: 400", re.MULTILINE)
_RECORD = re.compile(r"^(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.MULTILINE)


def crashes(log: str) -> list[str]:
    """Log records with a traceback (an unexpected exception anywhere in the serve's process tree)."""
    return [r for r in _RECORD.split(log) if "Traceback" in r and not _PARSER_REJECTION.search(r)]


# -- what was sent and what came back --------------------------------------------------------------


@dataclass
class World:
    """The fuzz run's model of the service: users, the chats responses confirmed, turns begun."""

    run: str = RUN
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    users: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # chat_id -> user_id
    turns: Counter[str] = field(default_factory=Counter)  # chat_id -> user messages stored
    deleted: set[str] = field(default_factory=set)
    sent_users: set[str] = field(default_factory=set)
    uncertain_deletes: int = 0  # deletes that succeeded on a path whose chat id is not certain

    def created(self, chat_id: str, user_id: str) -> None:
        self.owners[chat_id] = user_id
        self.deleted.discard(chat_id)

    def deleted_chat(self, chat_id: str | None) -> None:
        """A delete succeeded; None: on a path whose chat id is not certain."""
        if chat_id is None:
            self.uncertain_deletes += 1
            return
        self.deleted.add(chat_id)
        self.owners.pop(chat_id, None)

    def turn(self, chat_id: str, user_id: str) -> None:
        self.owners.setdefault(chat_id, user_id)
        self.turns[chat_id] += 1


@dataclass
class Tally:
    """Requests per target and what came back, written to artifacts/faults/fuzz.json."""

    sent: Counter[str] = field(default_factory=Counter)
    outcomes: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    checks: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, dict[str, float]] = field(default_factory=dict)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)

    def ran(self, target: str, examples: int, seconds: float) -> None:
        self.runs[target] = {"max_examples": examples, "seconds": round(seconds, 1)}

    def count(self, target: str, outcome: str | int, seconds: float = 0.0) -> None:
        self.sent[target] += 1
        self.outcomes[target][str(outcome)] += 1
        self.slowest = sorted([*self.slowest, (round(seconds, 2), target, str(outcome))], reverse=True)[:5]

    def report(self, seconds: float) -> dict[str, Any]:
        targets = {
            t: {"sent": n, "outcomes": dict(sorted(self.outcomes[t].items())), **self.runs.get(t, {})}
            for t, n in sorted(self.sent.items())
        }
        bad = sum(
            n
            for o in self.outcomes.values()
            for k, n in o.items()
            if k.startswith("5") or k in ("UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED")
        )
        return {
            "requests": sum(self.sent.values()),
            "targets": targets,
            "server_errors": bad,
            "checks": self.checks,
            "slowest_requests": [{"seconds": t, "target": n, "outcome": o} for t, n, o in self.slowest],
            "seconds": round(seconds, 1),
        }

    def summary(self, report: Mapping[str, Any]) -> str:
        kinds = Counter(t.split(" ")[0] for t in self.sent.elements())
        return (
            f"fuzz: {report['requests']} requests ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
            f" over {len(self.sent)} targets, {report['server_errors']} server errors, "
            f"{report['checks'].get('chats_checked', 0)} chats / "
            f"{report['checks'].get('messages_checked', 0)} messages checked, "
            f"{len(report['checks'].get('violations', []))} violations, {report['seconds']} s"
        )


# -- what the database holds afterwards -------------------------------------------------------------


async def stored_violations(url: DatabaseURL, w: World, tally: Tally) -> list[str]:
    """Every invariant a whole record keeps, over the chats this run created or touched."""
    conn = await asyncmy.connect(
        host=url.host, port=url.port, user=url.user, password=url.password, db=url.database, charset="utf8mb4"
    )
    try:
        chats, rows = await _read_run(conn, w)
    finally:
        conn.close()
    problems: list[str] = []
    by_chat: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_chat.setdefault(row[0], []).append(row)
    for chat_id in set(by_chat) - set(chats):
        problems.append(f"messages of chat {chat_id!r} without the chat")
    for chat_id in w.deleted & set(chats):
        problems.append(f"deleted chat {chat_id!r} is still stored")
    if not w.uncertain_deletes:
        problems += [f"chat {c!r} is missing" for c in w.owners if c not in chats]
    for chat_id, (user_id, title) in chats.items():
        problems += _chat_violations(chat_id, user_id, title, by_chat.get(chat_id, []), w)
    tally.checks.update(chats_checked=len(chats), messages_checked=len(rows))
    return problems


async def _read_run(conn: Any, w: World) -> tuple[dict[str, tuple[str, str]], list[tuple[Any, ...]]]:
    """The chats this run confirmed or deleted, and those of its users created since it began."""
    async with conn.cursor() as cur:
        known = sorted(set(w.owners) | w.deleted)
        by_id = await _select_in(cur, "SELECT id, user_id, title FROM chats WHERE id IN ({})", known)
        recent = "SELECT id, user_id, title FROM chats WHERE created_at >= %s AND user_id IN ({})"
        by_user = await _select_in(cur, recent, sorted(w.sent_users), w.started_at)
        # PAD SPACE: in SQL 'u' = 'u '; keep the rows whose user is one this run really sent.
        chats = {r[0]: (r[1], r[2]) for r in by_id} | {
            r[0]: (r[1], r[2]) for r in by_user if r[1] in w.sent_users
        }
        columns = "chat_id, seq, role, content, turn_id, status"
        messages = f"SELECT {columns} FROM messages WHERE chat_id IN ({{}}) ORDER BY chat_id, seq"
        rows = await _select_in(cur, messages, sorted(set(chats) | w.deleted))
    return chats, rows


async def _select_in(cur: Any, sql: str, values: list[Any], *head: Any) -> list[tuple[Any, ...]]:
    """`sql` with its IN ({}) list filled from `values`, 200 at a time."""
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(values), 200):
        part = values[i : i + 200]
        await cur.execute(sql.format(", ".join(["%s"] * len(part))), [*head, *part])
        rows += list(await cur.fetchall())
    return rows


def _renamed(title: str) -> bool:
    """A title a rename (PATCH, RenameChat: the fuzzer sends them too) could have stored."""
    try:
        return bool(title) and renamed_title(title) == title
    except InvalidArgument:
        return False


def _chat_violations(
    chat_id: str, user_id: str, title: str, rows: list[tuple[Any, ...]], w: World
) -> list[str]:
    problems = []
    seqs = [r[1] for r in rows]
    if seqs != list(range(1, len(rows) + 1)):
        problems.append(f"chat {chat_id!r}: seqs {seqs} are not 1..n")
    users = [r for r in rows if r[2] == "user"]
    if any(not r[3].strip() for r in users):
        problems.append(f"chat {chat_id!r}: an empty user message")
    if any(r[2] == "system" and r[1] != 1 for r in rows):
        problems.append(f"chat {chat_id!r}: a system message after the first")
    answered = [r[4] for r in rows if r[2] == "assistant"]
    if len(answered) != len(set(answered)):
        problems.append(f"chat {chat_id!r}: a turn with two answers")
    for before, after in itertools.pairwise(rows):
        if after[2] == "assistant" and (before[2], before[4]) != ("user", after[4]):
            problems.append(f"chat {chat_id!r}: answer {after[1]} does not follow its turn's user message")
    if title != (chat_title(users[0][3]) if users else "") and not _renamed(title):
        problems.append(f"chat {chat_id!r}: title {title!r} is neither its first message's nor a rename's")
    owner = w.owners.get(chat_id)
    if chat_id.startswith("wa:"):
        generation = whatsapp.generation_of(chat_id)
        key = whatsapp.id_key(None, TWILIO_TOKEN)
        if generation is None or chat_id != whatsapp.chat_id_for(user_id, generation, key):
            problems.append(f"chat {chat_id!r} does not belong to its user {user_id!r}")
    elif owner is None:
        problems.append(f"chat {chat_id!r} of {user_id!r} was stored by a request that failed")
    elif owner != user_id:
        problems.append(f"chat {chat_id!r} belongs to {user_id!r}, created for {owner!r}")
    elif len(users) != w.turns[chat_id]:
        problems.append(
            f"chat {chat_id!r}: {len(users)} user messages stored for {w.turns[chat_id]} turns begun"
        )
    return problems
