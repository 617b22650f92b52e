"""One turn over each interface the driver measures; each returns the client-side timings."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import grpc

from gateways.rpc.gen import chat_pb2, chat_pb2_grpc
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc


@dataclass(slots=True)
class Turn:
    """Monotonic times of one turn: sent, first answer token seen, answer complete."""

    start: float
    first: float | None = None
    end: float | None = None
    window: int | None = None  # messages in the prompt, when the interface tells
    error: str | None = None

    def first_token(self) -> None:
        if self.first is None:
            self.first = time.monotonic()


class Client(Protocol):
    async def turn(self, user_id: str, chat_id: str, content: str) -> Turn: ...

    async def close(self) -> None: ...


class GrpcV1:
    """chatservice.v1 SendMessage: started, deltas, finished."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.ChatServiceStub(self._channel)

    async def turn(self, user_id: str, chat_id: str, content: str) -> Turn:
        t = Turn(time.monotonic())
        call = self._stub.SendMessage(
            pb.SendMessageRequest(user_id=user_id, chat_id=chat_id, content=content)
        )
        async for event in call:
            kind = event.WhichOneof("event")
            if kind == "delta":
                t.first_token()
            elif kind == "started":
                t.window = event.started.window.message_count
        t.end = time.monotonic()
        return t

    async def close(self) -> None:
        await self._channel.close()


class GrpcLegacy:
    """pb.ChatService/ChatStream, the original contract: each response holds the answer so far."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = chat_pb2_grpc.ChatServiceStub(self._channel)

    async def turn(self, user_id: str, chat_id: str, content: str) -> Turn:
        t = Turn(time.monotonic())
        call = self._stub.ChatStream(
            chat_pb2.ChatRequest(chat_id=chat_id, user_id=user_id, user_message=content)
        )
        async for response in call:
            if response.content:
                t.first_token()
        t.end = time.monotonic()
        return t

    async def close(self) -> None:
        await self._channel.close()


class Sse:
    """POST a message, read `start`/`delta`/`end` events: chatservice's /v1 or the baseline."""

    def __init__(self, url: str, *, baseline: bool = False) -> None:
        self._url = url.rstrip("/")
        self._baseline = baseline
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    def _target(self, user_id: str, chat_id: str) -> str:
        if self._baseline:
            return f"{self._url}/chats/{chat_id}/messages"
        return f"{self._url}/v1/users/{user_id}/chats/{chat_id}/messages"

    async def turn(self, user_id: str, chat_id: str, content: str) -> Turn:
        t = Turn(time.monotonic())
        body = {"content": content}
        headers = {"Accept": "text/event-stream"}
        async with self._session.post(self._target(user_id, chat_id), json=body, headers=headers) as r:
            if r.status != 200:
                t.error = f"http {r.status}"
                return t
            event = ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    if event == "delta":
                        t.first_token()
                    elif event == "start":
                        t.window = json.loads(line[6:])["window"]["messages"]
                    elif event == "end":
                        t.end = time.monotonic()
                    elif event == "error":
                        t.error = f"sse error {json.loads(line[6:])['status']}"
        return t

    async def close(self) -> None:
        await self._session.close()


class DirectLLM:
    """The test LLM without the service in between: the floor any gateway adds to."""

    def __init__(self, base_url: str, prompt: list[dict[str, str]], model: str) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._prompt = prompt
        self._model = model
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def turn(self, user_id: str, chat_id: str, content: str) -> Turn:
        t = Turn(time.monotonic(), window=len(self._prompt) + 1)
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [*self._prompt, {"role": "user", "content": content}],
            "stream": True,
        }
        async with self._session.post(self._url, json=body, headers={"Authorization": "Bearer bench"}) as r:
            async for raw in r.content:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    t.end = time.monotonic()
                else:
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        t.first_token()
        return t

    async def close(self) -> None:
        await self._session.close()


def make_client(target: str, urls: dict[str, str], prompt: list[dict[str, str]], model: str) -> Client:
    if target == "grpc_v1":
        return GrpcV1(urls["grpc"])
    if target == "grpc_legacy":
        return GrpcLegacy(urls["grpc"])
    if target == "http_sse":
        return Sse(urls["http"])
    if target == "baseline":
        return Sse(urls["baseline"], baseline=True)
    if target == "direct":
        return DirectLLM(urls["llm"], prompt, model)
    raise ValueError(f"unknown target {target!r}")
