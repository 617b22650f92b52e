"""`chatservice serve` against a real llama.cpp server: thirty turns of long Portuguese and Chinese.

The service talks to llama-cpp-python's server (tiny model, `n_ctx` 1024) through a recorder that
keeps every prompt it sent, so each turn's window count can be set against the server's own count
of that very prompt. Turns alternate between a chat driven over SSE (`/v1`) and one driven over
`POST /chat`; each chat also gets one message that can never fit the server's context. Every run
writes its per-turn table to `artifacts/llamacpp/` (json + markdown) before asserting anything.
"""

from __future__ import annotations

import http.client
import json
import random
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.window import REPLY_PRIMING_TOKENS
from gateways.llm.tokenizer import Tokenizer
from tests.conftest import repo_root
from tests.http_support import parse_events
from tests.llamacpp.server import CONTEXT, LlamaServer, Recorder
from tests.llamacpp.text import long_message
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.llamacpp, pytest.mark.e2e, pytest.mark.ray]
TURNS = 30
MAX_TOKENS = 64
OVERSIZED = {20, 21}  # one turn per chat whose message alone is larger than n_ctx for the server
TOLERANCE = 0.05
ARTIFACTS = repo_root() / "artifacts" / "llamacpp"


@dataclass
class Turn:
    """One turn as the client and the server saw it: a row of the table."""

    number: int
    via: str  # "sse" (/v1 with text/event-stream) or "chat" (POST /chat)
    chat_id: str
    language: str
    o200k: int  # the user message alone, counted with o200k_base
    llama: int  # the user message alone, counted by the server's tokenizer
    status: int = 0
    outcome: str = ""  # "answer", "error" (with a message), "empty" or "broken" (SSE with no end)
    detail: str = ""
    finish_reason: str | None = None
    reported: int | None = None  # the SSE start event's window.tokens
    window: int | None = None  # the service's count of the prompt it last sent this turn
    server: int | None = None  # the server's prompt_tokens for that same prompt
    exchanges: list[str] = field(default_factory=list)

    @property
    def off(self) -> float | None:
        """How far the window's count is from the server's, as a share of the server's."""
        if self.window is None or not self.server:
            return None
        return (self.window - self.server) / self.server


class Client:
    """The served process's HTTP API, as a user's program calls it."""

    def __init__(self, serve: ServeProcess, user: str) -> None:
        self.serve, self.user = serve, user

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.serve.web_port, timeout=300)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, data, {"Content-Type": "application/json", **headers})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or "", r.read()
        finally:
            conn.close()

    def create(self, chat_id: str) -> None:
        status, _, raw = self.call("POST", f"/v1/users/{self.user}/chats", {"chat_id": chat_id})
        assert status == 201, raw

    def messages(self, chat_id: str) -> list[dict[str, Any]]:
        path = f"/v1/users/{self.user}/chats/{chat_id}/messages?include_erased=true&page_size=1000"
        status, _, raw = self.call("GET", path)
        assert status == 200, raw
        return json.loads(raw)["messages"]  # type: ignore[no-any-return]

    def sse(self, turn: Turn, content: str) -> None:
        path = f"/v1/users/{self.user}/chats/{turn.chat_id}/messages"
        turn.status, kind, raw = self.call("POST", path, {"content": content}, Accept="text/event-stream")
        if not kind.startswith("text/event-stream"):
            _failed(turn, json.loads(raw) if raw else None)
            return
        events = parse_events(raw)
        turn.reported = next((d["window"]["tokens"] for e, d in events if e == "start"), None)
        error = next((d for e, d in events if e == "error"), None)
        end = next((d for e, d in events if e == "end"), None)
        if error is not None:
            turn.status = error.get("status", turn.status)
            _failed(turn, error)
        elif end is None:
            turn.outcome, turn.detail = "broken", "the event stream ended with neither end nor error"
        else:
            _answered(turn, "".join(d["text"] for e, d in events if e == "delta"), end.get("finish_reason"))

    def chat(self, turn: Turn, content: str) -> None:
        body = {"chat_id": turn.chat_id, "user_id": self.user, "user_message": content}
        turn.status, _, raw = self.call("POST", "/chat", body)
        if turn.status == 200:
            _answered(turn, json.loads(raw)["content"], None)
        else:
            _failed(turn, json.loads(raw) if raw else None)


def _failed(turn: Turn, body: Any) -> None:
    """An error as the client got it: its message is what a user would read."""
    turn.outcome = "error"
    turn.detail = str(((body or {}).get("error") or {}).get("message") or "")[:160]


def _answered(turn: Turn, text: str, finish: str | None) -> None:
    turn.outcome = "answer" if text.strip() else "empty"
    turn.detail, turn.finish_reason = text[:40], finish


def message_text(rng: random.Random, number: int) -> tuple[str, str]:
    """The turn's language and message: long Portuguese and Chinese, one far too long per chat."""
    language = "pt" if number // 2 % 2 == 0 else "zh"
    if number in OVERSIZED:
        return language, long_message(rng, language, 40)
    return language, long_message(rng, language, rng.randint(4, 10))


def window_count(prompt: list[dict[str, Any]], stored: list[dict[str, Any]]) -> int | None:
    """The service's count of a prompt it sent: its stored per-message counts, reply priming added."""
    counts = {(m["role"], m["content"]): m["tokens"] for m in stored}
    try:
        return REPLY_PRIMING_TOKENS + sum(int(counts[(m["role"], m["content"])]) for m in prompt)
    except KeyError:
        return None  # a message the store does not hold (never expected): left blank in the table


def run_turns(
    serve: ServeProcess, recorder: Recorder, llama: LlamaServer
) -> tuple[list[Turn], dict[str, list[dict[str, Any]]]]:
    """Play the turns one after another; returns the rows and, per chat, every stored message."""
    client = Client(serve, f"llama-{uuid.uuid4().hex[:8]}")
    chats = {"sse": f"lc-sse-{uuid.uuid4().hex[:12]}", "chat": f"lc-chat-{uuid.uuid4().hex[:12]}"}
    client.create(chats["sse"])
    o200k, rng, turns = Tokenizer("o200k-approximation"), random.Random(2024), []
    for number in range(1, TURNS + 1):
        via = "sse" if number % 2 else "chat"
        language, content = message_text(rng, number)
        bos = 1  # the server's tokenize count includes the BOS token its model adds
        llama_count = llama.post("/extras/tokenize/count", {"input": content})[1]["count"] - bos
        turn = Turn(number, via, chats[via], language, o200k.count_text(content), llama_count)
        before = len(recorder.exchanges)
        (client.sse if via == "sse" else client.chat)(turn, content)
        sent = recorder.exchanges[before:]
        turn.exchanges = [e.summary() for e in sent]
        if sent:
            prompt = sent[-1].body["messages"]
            turn.window = window_count(prompt, client.messages(turn.chat_id))
            turn.server = llama.prompt_tokens(prompt)
        turns.append(turn)
    return turns, {chat: client.messages(chat) for chat in chats.values()}


def write_table(name: str, turns: list[Turn], env: dict[str, str]) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    rows = [asdict(t) | {"off": t.off} for t in turns]
    (ARTIFACTS / f"{name}.json").write_text(json.dumps({"env": env, "turns": rows}, indent=1))
    lines = [
        f"# chatservice against llama.cpp ({name})",
        "",
        " ".join(f"`{k}={v}`" for k, v in env.items()),
        "",
        "| turn | via | lang | message o200k / llama | window | server prompt_tokens | off "
        "| the server did | the client got |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in turns:
        off = "" if t.off is None else f"{t.off:+.1%}"
        got = {
            "answer": f"answer ({t.finish_reason or 'ok'})",
            "empty": "**empty answer**",
            "broken": "**stream with no end**",
        }.get(t.outcome, f"error {t.status}: {t.detail[:70]}".replace("|", "\\|"))
        lines.append(
            f"| {t.number} | {t.via} | {t.language} | {t.o200k} / {t.llama} | {t.window or ''} "
            f"| {t.server or ''} | {off} | {'; '.join(t.exchanges) or 'nothing sent'} | {got} |"
        )
    path = ARTIFACTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def serve_env(recorder: Recorder, llama: LlamaServer, ray: str, db: Path, tokenizer: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-llama",
        "OPENAI_BASE_URL": recorder.base_url,
        "MODEL": llama.model_id,
        "MODEL_MAX_TOKENS": str(CONTEXT),
        "MAX_TOKENS": str(MAX_TOKENS),
        "TOKENIZER": tokenizer,
        "DATABASE_URL": f"sqlite:///{db}",
        "RAY_ADDRESS": ray,
        "CHAT_TURNS_PER_MINUTE": "0",
        "USER_TURNS_PER_MINUTE": "0",
        "AUTO_TITLE": "0",  # the recorder compares every prompt with a turn's window
    }


@pytest.mark.parametrize("tokenizer", ["server", "tiktoken"])
def test_thirty_turns_against_a_real_llama_cpp_server(
    tokenizer: str, llama_server: LlamaServer, ray_session: str, tmp_path: Path
) -> None:
    with Recorder(llama_server.url) as recorder:
        env = serve_env(recorder, llama_server, ray_session, tmp_path / "chats.db", tokenizer)
        serve = ServeProcess(env).start(timeout=240)  # generous: the machine may be busy
        try:
            turns, stored = run_turns(serve, recorder, llama_server)
        finally:
            serve.stop()
    shown = {k: env[k] for k in ("MODEL", "MODEL_MAX_TOKENS", "MAX_TOKENS", "TOKENIZER")}
    table = write_table(f"tokenizer-{tokenizer}", turns, shown)
    note = f"per-turn table: {table}"

    # Nothing empty reaches a client, and nothing empty is stored as a completed answer.
    assert not [t.number for t in turns if t.outcome == "empty"], note
    empty = [m for ms in stored.values() for m in ms if m["role"] == "assistant" and not m["content"]]
    assert not [m for m in empty if m["status"] == "complete"], note
    # Every turn is answered but the message that can never fit, which gets an error that says why,
    # and the same chat answers its next turn (no chat left broken).
    outcome = {t.number: t for t in turns}
    assert [t.number for t in turns if t.outcome != "answer"] == sorted(OVERSIZED), note
    assert all(outcome[n].outcome == "error" and outcome[n].detail for n in OVERSIZED), note
    assert all(outcome[n + 2].outcome == "answer" for n in OVERSIZED), note
    if tokenizer == "server":
        # The window counts with the server's tokenizer: within 5% of what the server counted.
        assert all(t.off is not None and abs(t.off) <= TOLERANCE for t in turns if t.outcome == "answer"), (
            note
        )
