"""A real llama.cpp server (llama-cpp-python's) for tests, and a recorder that sits in front of it.

`LlamaServer(model).start()` runs `python -m llama_cpp.server` on a free port and waits until it
answers. `Recorder(upstream)` is a pass-through HTTP proxy: the service talks to it as to the server,
it forwards every request unchanged and streams every answer back, and keeps what went over the wire
for chat completions (the prompt sent, the status, whether the stream carried content, a finish
reason and `[DONE]`), so a test can compare the service's window with what the server really saw.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from tests.conftest import free_port

CONTEXT = 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class LlamaServer:
    """`python -m llama_cpp.server` on a tiny model: one thread, `n_ctx` 1024, stopped on exit.

    The server reports the model under its file's stem (`--model_alias`), e.g. tiny-sp-llama.
    """

    def __init__(self, model: Path, context: int = CONTEXT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.args = [
            *(sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", model.stem),
            *("--n_ctx", str(context), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LlamaServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                self.get("/v1/models")
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """How many tokens the server makes of these messages, its chat template applied.

        A one-token non-streaming completion reports them as `usage.prompt_tokens`; a prompt that
        does not fit is refused with 400 and the same number "in the messages".
        """
        status, body = self.post("/v1/chat/completions", {"messages": messages, "max_tokens": 1})
        if status == 200:
            return int(body["usage"]["prompt_tokens"])
        found = re.search(r"\((\d+) in the messages", body["error"]["message"])
        if status != 400 or found is None:
            raise RuntimeError(f"llama_cpp.server answered {status}: {body}")
        return int(found.group(1))

    @property
    def model_id(self) -> str:
        """The model's name as the server reports it on /v1/models."""
        return str(self.get("/v1/models")["data"][0]["id"])

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Exchange:
    """One chat completion request as it went over the wire."""

    body: dict[str, Any]
    status: int = 0
    content_chunks: int = 0
    finish_reason: str | None = None
    done: bool = False  # the stream ended with data: [DONE]
    usage: dict[str, Any] | None = None
    error: Any = None
    events: list[str] = field(default_factory=list, repr=False)

    @property
    def streaming(self) -> bool:
        return bool(self.body.get("stream"))

    def summary(self) -> str:
        """What the server did, in a few words, for the per-turn table."""
        if self.status != 200:
            code = (self.error or {}).get("error", {}).get("code") if isinstance(self.error, dict) else None
            return f"{self.status} {code or ''}".strip()
        if not self.streaming:
            return f"200 json, finish {self.finish_reason}"
        if not self.events:
            return "200, empty stream (no chunk, no [DONE])"
        return f"200 stream, {self.content_chunks} content chunks, finish {self.finish_reason}" + (
            ", [DONE]" if self.done else ", no [DONE]"
        )


class Recorder:
    """A pass-through proxy in front of `upstream` that records every chat completion exchange."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()

    def start(self) -> Recorder:
        threading.Thread(target=self._run, name="llama-recorder", daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("recorder did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=1 << 24)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        exchange = None
        if request.path.endswith("/chat/completions"):
            exchange = Exchange(json.loads(raw))
            self.exchanges.append(exchange)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with (
            ClientSession(timeout=ClientTimeout(total=None, sock_read=300)) as session,
            session.request(request.method, self.upstream + request.path_qs, data=raw, headers=headers) as up,
        ):
            response = web.StreamResponse(
                status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP}
            )
            await response.prepare(request)
            body = b""
            try:
                async for chunk in up.content.iter_any():
                    body += chunk
                    await response.write(chunk)
                await response.write_eof()
            finally:
                if exchange is not None:
                    _observe(exchange, up.status, up.headers.get("Content-Type", ""), body)
        return response


def _observe(exchange: Exchange, status: int, kind: str, body: bytes) -> None:
    exchange.status = status
    if status != 200 or not kind.startswith("text/event-stream"):
        parsed = json.loads(body) if body.strip() else None
        if status != 200:
            exchange.error = parsed
        elif isinstance(parsed, dict):
            exchange.finish_reason = parsed["choices"][0]["finish_reason"]
            exchange.usage = parsed.get("usage")
        return
    for line in body.decode(errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        exchange.events.append(data)
        if data == "[DONE]":
            exchange.done = True
            continue
        chunk = json.loads(data)
        exchange.usage = chunk.get("usage") or exchange.usage
        for choice in chunk.get("choices") or []:
            exchange.content_chunks += bool((choice.get("delta") or {}).get("content"))
            exchange.finish_reason = choice.get("finish_reason") or exchange.finish_reason
