"""Counting a message's tokens for the window: tiktoken, or the model's own tokenizer on its server.

TOKENIZER=auto counts OpenAI models (the known-model table) with tiktoken and other models with
their server's tokenize endpoint when it has one, probed once per model at first use:

- vLLM: `POST /tokenize` `{"model", "prompt", "add_special_tokens"}` or `{"model", "messages",
  "add_generation_prompt"}` -> `{"count", "max_model_len", "tokens"}` (the chat template applied).
- llama.cpp `llama-server`: `POST /tokenize` `{"content", "add_special"}` -> `{"tokens": [...]}`, and
  `POST /apply-template` `{"messages"}` -> `{"prompt"}` (the templated prompt, generation prompt included).
- llama-cpp-python: `POST /extras/tokenize/count` `{"model", "input"}` -> `{"count"}` (BOS included).
  It has no template endpoint, so its template is measured with two one-token chat completions.

The probe measures the chat template's tokens around each message (and the prompt's fixed part,
charged to the system message, which every prompt starts with); each message then costs one
request. A count the server does not answer in time falls back to tiktoken scaled by the ratio
the probe measured; a model whose server has no endpoint is counted with tiktoken (and corrected
by the usage servers report: gateways/llm/calibration.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from actors.window import REPLY_PRIMING_TOKENS
from gateways import metrics
from gateways.llm.context_windows import context_window
from gateways.llm.endpoints import LLMServer
from gateways.llm.tokenizer import TOKENS_PER_MESSAGE, tokenizer_for

log = logging.getLogger("chatservice.llm")
TOKENIZERS = ("auto", "tiktoken", "server")
REPROBE_SECONDS = 60.0  # a model whose probe found nothing is probed again after this long
PROBE_TEXT = "ok"
# What a fallback count is scaled by: server tokens per tiktoken token on mixed text.
RATIO_TEXT = (
    "Qual é a capital do Brasil? Brasília fica no planalto central. "
    "北京是中国的首都，人口众多。The quick brown fox jumps over the lazy dog 🙂"
)
Messages = list[dict[str, str]]


class _Endpoint(Protocol):
    name: str

    async def content(self, text: str) -> int | None: ...

    async def prompt(self, messages: Messages) -> int | None: ...


def _count(reply: Any, key: str = "count") -> int | None:
    value = reply.get(key) if isinstance(reply, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _VLLM:
    name = "vLLM POST /tokenize"

    def __init__(self, server: LLMServer, model: str) -> None:
        self._server, self._model, self._url = server, model, f"{server.root}/tokenize"

    async def content(self, text: str) -> int | None:
        body = {"model": self._model, "prompt": text, "add_special_tokens": False}
        return _count(await self._server.post(self._url, body))

    async def prompt(self, messages: Messages) -> int | None:
        body = {"model": self._model, "messages": messages, "add_generation_prompt": True}
        return _count(await self._server.post(self._url, body))


class _LlamaServer:
    name = "llama.cpp POST /tokenize"

    def __init__(self, server: LLMServer, model: str) -> None:
        self._server, self._url = server, f"{server.root}/tokenize"

    async def _tokens(self, text: str, special: bool) -> int | None:
        reply = await self._server.post(self._url, {"content": text, "add_special": special})
        tokens = reply.get("tokens") if isinstance(reply, dict) else None
        return len(tokens) if isinstance(tokens, list) and (tokens or not text) else None

    async def content(self, text: str) -> int | None:
        return await self._tokens(text, special=False)

    async def prompt(self, messages: Messages) -> int | None:
        reply = await self._server.post(f"{self._server.root}/apply-template", {"messages": messages})
        prompt = reply.get("prompt") if isinstance(reply, dict) else None
        return await self._tokens(prompt, special=True) if isinstance(prompt, str) else None


class _LlamaCppPython:
    name = "llama-cpp-python POST /extras/tokenize/count"

    def __init__(self, server: LLMServer, model: str) -> None:
        self._server, self._model = server, model
        self._url = f"{server.root}/extras/tokenize/count"
        self.bos = 0  # the count includes BOS when the model adds one; set by the probe

    async def content(self, text: str) -> int | None:
        count = _count(await self._server.post(self._url, {"model": self._model, "input": text}))
        return None if count is None else max(count - self.bos, 0)

    async def prompt(self, messages: Messages) -> int | None:
        body = {"model": self._model, "messages": messages, "max_tokens": 1, "stream": False}
        reply = await self._server.post(f"{self._server.base_url}/chat/completions", body)
        return _count(reply.get("usage") if isinstance(reply, dict) else None, "prompt_tokens")


@dataclass(frozen=True, slots=True)
class ServerTokenizer:
    """A model's tokenizer on its server, and what its chat template adds."""

    endpoint: _Endpoint
    per_message: int  # template tokens around each message's content
    fixed: int  # the prompt's own template tokens beyond the window's reply priming
    per_tiktoken: float  # server tokens per tiktoken token on mixed text (for fallback counts)

    def describe(self) -> str:
        return f"{self.endpoint.name}, chat template +{self.per_message} a message, +{self.fixed} a prompt"


async def probe(server: LLMServer, model: str) -> ServerTokenizer | None:
    """The first tokenize endpoint that answers for `model`, with its template measured."""
    try:
        return await _probe(server, model)
    except Exception:
        log.exception("probing the LLM server's tokenizer for %s failed", model)
        return None


async def _probe(server: LLMServer, model: str) -> ServerTokenizer | None:
    for kind in (_VLLM, _LlamaServer, _LlamaCppPython):
        endpoint = kind(server, model)
        if isinstance(endpoint, _LlamaCppPython):
            endpoint.bos = await endpoint.content("") or 0
        unit = await endpoint.content(PROBE_TEXT)
        if unit:
            return await _measure(endpoint, model, unit)
    return None


async def _measure(endpoint: _Endpoint, model: str, unit: int) -> ServerTokenizer:
    pair = [{"role": "user", "content": PROBE_TEXT}, {"role": "assistant", "content": PROBE_TEXT}]
    system = [{"role": "system", "content": PROBE_TEXT}]
    first = system + pair
    short = await endpoint.prompt(first)
    if short is None:  # some templates refuse a system message
        first = pair
        short = await endpoint.prompt(first)
    long = await endpoint.prompt(first + pair)
    per_message, fixed = TOKENS_PER_MESSAGE + 1, 0  # the cookbook's, when the template cannot be seen
    if short is not None and long is not None and long > short:
        per_message = max(round((long - short) / 2) - unit, 0)
        fixed = short - len(first) * (unit + per_message) - REPLY_PRIMING_TOKENS
    sample = await endpoint.content(RATIO_TEXT)
    local = tokenizer_for(model).count_text(RATIO_TEXT)
    return ServerTokenizer(endpoint, per_message, fixed, (sample or local) / local)


class TokenCounter:
    """Counts messages as `mode` (auto, tiktoken or server) says; one instance per gateway process."""

    def __init__(self, mode: str = "tiktoken", server: LLMServer | None = None) -> None:
        self.mode = mode
        self._server = server
        self._probes: dict[str, tuple[float, asyncio.Future[ServerTokenizer | None]]] = {}

    def counts_locally(self, model: str) -> bool:
        if self._server is None or self.mode == "tiktoken":
            return True
        return self.mode == "auto" and context_window(model) is not None

    async def tokenizer(self, model: str) -> ServerTokenizer | None:
        """The model's tokenizer on its server, or None to count with tiktoken."""
        if self.counts_locally(model):
            return None
        assert self._server is not None
        known = self._probes.get(model)
        stale = known is not None and known[1].done() and known[1].result() is None
        if known is None or (stale and time.monotonic() - known[0] > REPROBE_SECONDS):
            task = asyncio.ensure_future(probe(self._server, model))
            task.add_done_callback(lambda t: _announce(model, t))
            known = self._probes[model] = (time.monotonic(), task)
        return await asyncio.shield(known[1])

    async def message(self, model: str, role: str, content: str) -> int:
        """Tokens one message adds to a prompt of this model, its template's share included."""
        server = await self.tokenizer(model)
        if server is None:
            return tokenizer_for(model).count_message(role, content)
        counted = await server.endpoint.content(content)
        if counted is None:
            metrics.llm_error("tokenize")
            log.warning(
                "%s did not count a message for %s: estimated with tiktoken", server.endpoint.name, model
            )
            counted = math.ceil(tokenizer_for(model).count_text(content) * server.per_tiktoken)
        extra = server.fixed if role == "system" else 0
        return max(counted + server.per_message + extra, 1)

    async def overhead(self, model: str, role: str) -> int:
        """What a message of `role` costs beyond its text (to tell an answer's own tokens)."""
        server = await self.tokenizer(model)
        if server is None:
            return TOKENS_PER_MESSAGE + tokenizer_for(model).count_text(role)
        return server.per_message

    async def check(self, model: str) -> str:
        """How `model` is counted; with TOKENIZER=server, a ValueError if its server cannot count."""
        server = await self.tokenizer(model)
        if server is None and self.mode == "server":
            raise ValueError(
                "the LLM server offers no tokenize endpoint (vLLM, llama.cpp or llama-cpp-python)"
            )
        return server.describe() if server else f"tiktoken {tokenizer_for(model).encoding.name}"


def _announce(model: str, task: asyncio.Future[ServerTokenizer | None]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    found = task.result()
    if found is None:
        log.info("model %s: its LLM server offers no tokenize endpoint", model)
    else:
        log.info("model %s: counting with %s", model, found.describe())
