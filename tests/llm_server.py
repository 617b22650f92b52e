"""A local OpenAI-compatible chat server for tests and benchmarks, driven by the real openai SDK.

It answers as the chosen backend does (`Behaviour.backend`: openai, vllm, llamacpp-python,
llama-server, ollama; their shapes and sources are in tests/llm_backends.py): its own token
counts and template, `n_ctx` enforced with the backend's overflow answer (streamed or not), usage
or none, Ollama's silent front truncation, and the backend's tokenize/props/models/show routes.

In-process: `with FakeLLM() as llm: llm.base_url` (runs on its own thread and event loop).
Standalone: `python -m tests.llm_server --port 8001 --ttft 0.05 --token-delay 0.01 --words 40
[--backend vllm --n-ctx 2048]`.
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

from tests import llm_backends as backends
from tests import transcription_api

Reply = Callable[[list[dict[str, Any]]], str]


def echo(messages: list[dict[str, Any]]) -> str:
    """Default answer: repeats the last user message, so tests can tell answers apart."""
    last = next((backends.text_of(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
    return f"Echo: {last}"


def words_reply(n: int) -> Reply:
    return lambda messages: " ".join(f"w{i}" for i in range(n))


@dataclass
class Behaviour:
    ttft: float = 0.0  # seconds before the first token
    token_delay: float = 0.0  # seconds between tokens
    reply: Reply = echo
    # Next requests' fates, consumed one per request: an HTTP status (429, 500...),
    # "hang" (never answer), "cut:N" (close the connection after N content chunks), "done:N"
    # (`data: [DONE]` after N chunks, no finish reason), "empty" (200 and no event at all), or
    # "overflow:N" (llama-server's in-stream "Context size has been exceeded." after N chunks).
    failures: collections.deque[int | str] = field(default_factory=collections.deque)
    # When `failures` is empty: each request's fate drawn from this (None = answer normally).
    chaos: Callable[[], int | str | None] | None = None
    backend: str = "openai"  # whose counts, errors and endpoints (tests/llm_backends.py)
    n_ctx: int | None = None  # the context the server enforces, in its own tokens (None: any)
    usage: bool | None = None  # send a usage chunk when asked; None: as the backend does
    vllm_wording: str = "old"  # "new": vLLM's later overflow message
    stream_error_as_event: bool = False  # llama-server builds that stream an overflow as `error:`
    interrupts: bool = False  # llama-cpp-python's interrupt_requests: a request ends a running answer
    ollama_num_ctx_in_modelfile: bool = False  # /api/show parameters carry num_ctx
    ollama_loaded: bool = False  # /api/ps lists the model
    tokenize_delay: float = 0.0  # seconds before a tokenize endpoint answers (a busy server)
    transcription_failures: collections.deque[int] = field(default_factory=collections.deque)


@dataclass
class Record:
    body: dict[str, Any]
    chunks_sent: int = 0
    finished: bool = False
    disconnected: bool = False
    fate: int | str | None = None
    prompt_tokens: int = 0  # the server's count of the prompt it was sent
    refused: bool = False  # answered as too large for the context
    interrupted: bool = False  # ended by another request (llama-cpp-python)


class FakeLLM:
    """Serves POST /v1/chat/completions (streaming and not) and records every request."""

    def __init__(self, behaviour: Behaviour | None = None, port: int = 0) -> None:
        self.behaviour = behaviour or Behaviour()
        self.records: list[Record] = []
        self.calls: list[str] = []  # every request's method and path, in order
        self.transcriptions: list[transcription_api.Transcription] = []
        self._streaming: set[asyncio.Event] = set()  # set to end a running answer early
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
        app = web.Application(middlewares=[self._observe])
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_post(
            "/v1/audio/transcriptions",
            transcription_api.handler(
                lambda: self.behaviour.backend,
                lambda: (
                    self.behaviour.transcription_failures.popleft()
                    if self.behaviour.transcription_failures
                    else None
                ),
                self.transcriptions,
            ),
        )
        app.add_routes(backends.routes(lambda: self.behaviour))  # tokenize, props, models, show...
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

    @web.middleware
    async def _observe(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.calls.append(f"{request.method} {request.path}")
        if self.behaviour.interrupts:
            for running in self._streaming:
                running.set()  # llama-cpp-python ends the answer it is streaming
        return await handler(request)

    def _fate(self) -> int | str | None:
        if self.behaviour.failures:
            return self.behaviour.failures.popleft()
        return self.behaviour.chaos() if self.behaviour.chaos else None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        b = self.behaviour
        record = Record(
            body, prompt_tokens=backends.prompt_tokens(b.backend, body["model"], body["messages"])
        )
        self.records.append(record)
        fate = self._fate()
        record.fate = fate
        if isinstance(fate, int):
            return _error(fate)
        if fate == "hang":
            await asyncio.sleep(3600)
        refused = b.n_ctx and backends.refusal(
            b.backend, record.prompt_tokens, body.get("max_tokens") or 0, b.n_ctx, b.vllm_wording
        )
        if refused:
            record.refused = True
            return await backends.refuse(request, bool(body.get("stream")), refused, b)
        pieces = _pieces(b.reply(body["messages"]))
        room = self._room(record.prompt_tokens)
        if not body.get("stream"):
            await asyncio.sleep(b.ttft)
            record.finished = True
            return web.json_response(self._completion(body, record, pieces[:room], len(pieces) > room))
        try:
            return await self._stream(request, body, record, pieces, room, fate)
        except (asyncio.CancelledError, ConnectionResetError):
            record.disconnected = True
            raise

    def _room(self, prompt: int) -> int:
        """How many answer pieces fit: llama.cpp servers cut an answer at the end of their context."""
        b = self.behaviour
        if b.n_ctx and b.backend in ("llamacpp-python", "llama-server"):
            return max(b.n_ctx - prompt, 0)
        return 1 << 30

    def _reported_prompt(self, record: Record) -> int:
        b = self.behaviour
        if b.backend == "ollama" and b.n_ctx and record.prompt_tokens > b.n_ctx:
            return b.n_ctx  # Ollama dropped the front of the prompt, and counts what it kept
        return record.prompt_tokens

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        record: Record,
        pieces: list[str],
        room: int,
        fate: int | str | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if fate == "empty":
            await response.write_eof()
            return response
        cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        stop_at = int(fate.split(":")[1]) if isinstance(fate, str) and ":" in fate else None
        interrupt = asyncio.Event()
        self._streaming.add(interrupt)
        try:
            await _send(response, _chunk(cid, body, {"role": "assistant", "content": ""}))
            await asyncio.sleep(self.behaviour.ttft)
            for i, piece in enumerate(pieces[:room]):
                if interrupt.is_set() or (stop_at is not None and i >= stop_at):
                    return await self._end_early(request, response, record, fate, interrupt.is_set())
                if i:
                    await asyncio.sleep(self.behaviour.token_delay)
                await _send(response, _chunk(cid, body, {"content": piece}))
                record.chunks_sent += 1
        finally:
            self._streaming.discard(interrupt)
        finish = "length" if len(pieces) > room else "stop"
        await self._finish(response, cid, body, record, finish)
        return response

    async def _end_early(
        self, request: web.Request, response: web.StreamResponse, record: Record, fate: Any, interrupted: bool
    ) -> web.StreamResponse:
        if interrupted or str(fate).startswith("done:"):
            record.interrupted = interrupted
            await response.write(b"data: [DONE]\n\n")  # no finish reason: the answer was cut
            await response.write_eof()
        elif str(fate).startswith("overflow:"):
            await _send(response, {"error": backends.CONTEXT_EXCEEDED_MID_ANSWER})
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        else:
            # Drop the connection mid-answer, as a crashing upstream would.
            assert request.transport is not None
            request.transport.close()
        return response

    async def _finish(
        self, response: web.StreamResponse, cid: str, body: dict[str, Any], record: Record, finish: str
    ) -> None:
        b = self.behaviour
        await _send(response, _chunk(cid, body, {}, finish=finish))
        usage = self._usage(record)
        asked = (body.get("stream_options") or {}).get("include_usage")
        if asked and (b.usage if b.usage is not None else backends.sends_usage(b.backend)):
            await _send(response, {**_chunk(cid, body, {}), "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        record.finished = True
        await response.write_eof()

    def _usage(self, record: Record) -> dict[str, int]:
        prompt = self._reported_prompt(record)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": record.chunks_sent,
            "total_tokens": prompt + record.chunks_sent,
        }

    def _completion(
        self, body: dict[str, Any], record: Record, pieces: list[str], cut: bool
    ) -> dict[str, Any]:
        record.chunks_sent = len(pieces)
        message = {"role": "assistant", "content": "".join(pieces)}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "length" if cut else "stop"}],
            "usage": self._usage(record),
        }


def _pieces(text: str) -> list[str]:
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


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


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload)}\n\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first token")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--words", type=int, default=0, help="answer length in words (0 = echo)")
    parser.add_argument("--backend", choices=backends.BACKENDS, default="openai", help="whose behaviour")
    parser.add_argument("--n-ctx", type=int, default=None, help="the context to enforce, in its own tokens")
    args = parser.parse_args()
    reply = words_reply(args.words) if args.words else echo
    behaviour = Behaviour(
        ttft=args.ttft, token_delay=args.token_delay, reply=reply, backend=args.backend, n_ctx=args.n_ctx
    )
    server = FakeLLM(behaviour, args.port)
    print(f"fake OpenAI-compatible server at {server.start()}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
