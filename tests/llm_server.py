"""A local OpenAI-compatible chat server for tests and benchmarks, driven by the real openai SDK.

In-process: `with FakeLLM() as llm: llm.base_url` (runs on its own thread and event loop).
Standalone: `python -m tests.llm_server --port 8001 --ttft 0.05 --token-delay 0.01 --words 40`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Reply = Callable[[list[dict[str, Any]]], str]


def echo(messages: list[dict[str, Any]]) -> str:
    """Default answer: repeats the last user message, so tests can tell answers apart."""
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"Echo: {last}"


def words_reply(n: int) -> Reply:
    return lambda messages: " ".join(f"w{i}" for i in range(n))


@dataclass
class Behaviour:
    ttft: float = 0.0  # seconds before the first token
    token_delay: float = 0.0  # seconds between tokens
    reply: Reply = echo
    # Next requests' fates, consumed one per request: an HTTP status (429, 500...),
    # "hang" (never answer), or "cut:N" (close the stream after N content chunks).
    failures: collections.deque[int | str] = field(default_factory=collections.deque)
    # When `failures` is empty: each request's fate drawn from this (None = answer normally).
    chaos: Callable[[], int | str | None] | None = None


@dataclass
class Record:
    body: dict[str, Any]
    chunks_sent: int = 0
    finished: bool = False
    disconnected: bool = False
    fate: int | str | None = None


class FakeLLM:
    """Serves POST /v1/chat/completions (streaming and not) and records every request."""

    def __init__(self, behaviour: Behaviour | None = None, port: int = 0) -> None:
        self.behaviour = behaviour or Behaviour()
        self.records: list[Record] = []
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeLLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        self._thread = threading.Thread(target=self._run, name="fake-llm", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake LLM server did not start")
        return self.base_url

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._ready.set()

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- observations ----------------------------------------------------------------------

    @property
    def disconnects(self) -> int:
        return sum(r.disconnected for r in self.records)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    # -- the API ---------------------------------------------------------------------------

    def _fate(self) -> int | str | None:
        if self.behaviour.failures:
            return self.behaviour.failures.popleft()
        return self.behaviour.chaos() if self.behaviour.chaos else None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        record = Record(body)
        self.records.append(record)
        fate = self._fate()
        record.fate = fate
        if isinstance(fate, int):
            return _error(fate)
        if fate == "hang":
            await asyncio.sleep(3600)
        cut = int(fate.split(":")[1]) if isinstance(fate, str) and fate.startswith("cut:") else None
        text = self.behaviour.reply(body["messages"])
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        if not body.get("stream"):
            await asyncio.sleep(self.behaviour.ttft)
            record.finished = True
            return web.json_response(_completion(body, text))
        try:
            return await self._stream(request, body, record, pieces, cut)
        except (asyncio.CancelledError, ConnectionResetError):
            record.disconnected = True
            raise

    async def _stream(
        self, request: web.Request, body: dict[str, Any], record: Record, pieces: list[str], cut: int | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        await _send(response, _chunk(cid, body, {"role": "assistant", "content": ""}))
        await asyncio.sleep(self.behaviour.ttft)
        for i, piece in enumerate(pieces):
            if cut is not None and i >= cut:
                # Drop the connection mid-answer, as a crashing upstream would.
                assert request.transport is not None
                request.transport.close()
                return response
            if i:
                await asyncio.sleep(self.behaviour.token_delay)
            await _send(response, _chunk(cid, body, {"content": piece}))
            record.chunks_sent += 1
        await _send(response, _chunk(cid, body, {}, finish="stop"))
        usage = {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)}
        if (body.get("stream_options") or {}).get("include_usage"):
            await _send(response, {**_chunk(cid, body, {}), "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        record.finished = True
        await response.write_eof()
        return response


def _error(status: int) -> web.Response:
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "error")
    # retry-after-ms keeps the SDK's own retries fast in tests.
    return web.json_response(
        {"error": {"message": f"fake failure {status}", "type": kind, "code": kind}},
        status=status,
        headers={"retry-after-ms": "10"},
    )


def _chunk(
    cid: str, body: dict[str, Any], delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--words", type=int, default=0, help="answer length in words (0 = echo)")
    args = parser.parse_args()
    reply = words_reply(args.words) if args.words else echo
    server = FakeLLM(Behaviour(ttft=args.ttft, token_delay=args.token_delay, reply=reply), args.port)
    print(f"fake OpenAI-compatible server at {server.start()}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
