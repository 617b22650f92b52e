"""What each OpenAI-compatible server does beyond the answer, for tests/llm_server.py to replay.

Shapes recorded from the servers' sources and trackers (the `search` tool over their code):
- OpenAI: overflow is 400 `{"error": {"message": "This model's maximum context length is N tokens.
  However, you requested T tokens (M in the messages, K in the completion)...", "type":
  "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}`; prompts are
  counted as the OpenAI cookbook says (tiktoken, 3 a message + the role, 3 to prime the reply).
- vLLM (vllm/entrypoints/openai/protocol.py, serving_engine.py): `POST /tokenize` takes
  `{"model", "prompt", "add_special_tokens"=true}` or `{"model", "messages",
  "add_generation_prompt"=true, "add_special_tokens"=false}` and answers `{"count",
  "max_model_len", "tokens"}`; `GET /v1/models` entries carry `max_model_len`. A prompt plus
  max_tokens beyond max_model_len is 400 `{"object": "error", "message": "This model's maximum
  context length is N tokens. However, you requested T tokens (M in the messages, K in the
  completion). Please reduce the length of the messages or completion.", "type": "BadRequestError",
  "param": null, "code": 400}`, streamed or not; newer versions wrap it in "error" and word it
  "...However, you requested K output tokens and your prompt contains M input tokens...".
- llama-cpp-python 0.3 (llama_cpp/server/app.py, errors.py, llama.py): `POST /extras/tokenize`
  `{"model", "input"}` -> `{"tokens"}` and `/extras/tokenize/count` -> `{"count"}`, both with BOS;
  `GET /v1/models` lists ids only. A prompt of n_ctx tokens or more is 400 `context_length_exceeded`
  ("...you requested T tokens (M in the messages, K in the completion)...") when not streamed; a
  streamed one gets status 200 and an empty body (what the issue recorded). max_tokens beyond the
  room left is cut silently (finish "length"). Streams carry no usage. By default a request that
  arrives while an answer streams ends that answer with `data: [DONE]` and no finish reason
  (`interrupt_requests`).
- llama.cpp llama-server (tools/server/README.md, server-context.cpp): `POST /tokenize`
  `{"content", "add_special"=false, "parse_special"=true}` -> `{"tokens"}`; `POST /apply-template`
  `{"messages"}` -> `{"prompt"}`; `GET /props` -> `{"default_generation_settings": {"n_ctx", ...},
  "total_slots", ...}`; `GET /v1/models` -> data with `meta.n_ctx_train` (the training context).
  A prompt of n_ctx tokens or more is 400 `{"error": {"code": 400, "message": "request (M tokens)
  exceeds the available context size (N tokens), try increasing it", "type":
  "exceed_context_size_error", "n_prompt_tokens": M, "n_ctx": N}}`, also when streamed; older
  builds stream it as an `error: {...}` SSE line (which OpenAI clients ignore) and `data: [DONE]`.
  A slot that fills mid-answer can end with 500 "Context size has been exceeded." (server_error).
- Ollama (docs/openai.md, docs/api.md, ollama#3427): `/v1` answers 200 even when the prompt is
  longer than num_ctx: the front of the prompt is dropped and `usage.prompt_tokens` is what was
  kept. `POST /api/show` -> `{"parameters": "num_ctx N\\n...", "model_info":
  {"<arch>.context_length": ...}, ...}`; `GET /api/ps` -> `{"models": [{"name", "context_length"}]}`.

The non-OpenAI backends count with a toy tokenizer of their own (a token per 4 ASCII letters, a
digit, or any other character; specials whole), so their counts differ from o200k's, and wrap
messages in a ChatML-like template.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import tiktoken
from aiohttp import web

from gateways.llm.tokenizer import ENCODINGS_DIR
from gateways.whatsapp.images import image_size, image_tokens

# tiktoken reads its encodings from the copies vendored in the package (no download).
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ENCODINGS_DIR))
BACKENDS = ("openai", "vllm", "llamacpp-python", "llama-server", "ollama")
_TOY = re.compile(r"<\|[a-z_]+\|>|</?s>|[A-Za-z]{1,4}|\d|[^\sA-Za-z\d]")
BOS = "<s>"


def toy_tokens(text: str) -> list[str]:
    """The toy tokenizer: deterministic, and about 1.5 to 2.5 times o200k's count on most text."""
    return _TOY.findall(text)


def template(messages: list[dict[str, Any]], generation_prompt: bool = True) -> str:
    """The toy chat template (ChatML-like): what /apply-template returns, BOS not included."""
    text = "".join(f"<|im_start|>{m['role']}\n{text_of(m.get('content'))}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


def toy_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A toy backend's count of a chat prompt: BOS, the templated messages, the generation prompt."""
    return 1 + len(toy_tokens(template(messages)))


def openai_prompt_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """OpenAI's count (the cookbook's formula), for the models tiktoken knows; o200k otherwise."""
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = "o200k_base"
    return 3 + sum(3 + _count(name, m["role"]) + _content(name, model, m.get("content")) for m in messages)


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: the string, or its text parts joined (image parts left out)."""
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if p.get("type") == "text")
    return content or ""


def _content(encoding: str, model: str, content: str | list[dict[str, Any]] | None) -> int:
    """Text as tiktoken counts it; each image part by OpenAI's rule for the model, read from its data URL."""
    if not isinstance(content, list):
        return _count(encoding, content or "")
    total = _count(encoding, text_of(content))
    for part in content:
        if part.get("type") == "image_url":
            url = part["image_url"]["url"]
            _, width, height = image_size(base64.b64decode(url.split(",", 1)[1]))
            total += image_tokens(model, width, height, part["image_url"].get("detail", "high"), 85)
    return total


@lru_cache(maxsize=1 << 14)
def _count(encoding: str, text: str) -> int:
    # Cached: a chat's window repeats its messages on every request (the benchmark sends hundreds).
    return len(tiktoken.get_encoding(encoding).encode(text, disallowed_special=()))


def prompt_tokens(backend: str, model: str, messages: list[dict[str, Any]]) -> int:
    if backend == "openai":
        return openai_prompt_tokens(model, messages)
    return toy_prompt_tokens(messages)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An overflow answer: its HTTP status and JSON body."""

    status: int
    body: dict[str, Any]


def refusal(backend: str, prompt: int, max_tokens: int, n_ctx: int, wording: str = "old") -> Refusal | None:
    """What `backend` answers a prompt of `prompt` tokens (and max_tokens) with a context of n_ctx."""
    total = prompt + max_tokens
    if backend == "openai" and total > n_ctx:
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {total} "
            f"tokens ({prompt} in the messages, {max_tokens} in the completion). Please reduce the "
            "length of the messages or completion."
        )
        error = {"message": message, "type": "invalid_request_error", "param": "messages"}
        return Refusal(400, {"error": error | {"code": "context_length_exceeded"}})
    if backend == "vllm" and total > n_ctx:
        return Refusal(400, _vllm(prompt, max_tokens, n_ctx, wording))
    if backend == "llamacpp-python" and prompt >= n_ctx:
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {total} "
            f"tokens ({prompt} in the messages, {max_tokens} in the completion). Please reduce the "
            "length of the messages or completion."
        )
        error = {"message": message, "type": "invalid_request_error", "param": "messages"}
        return Refusal(400, {"error": error | {"code": "context_length_exceeded"}})
    if backend == "llama-server" and prompt >= n_ctx:
        return Refusal(400, {"error": exceed_context_size(prompt, n_ctx)})
    return None


async def refuse(request: web.Request, streamed: bool, refused: Refusal, b: Any) -> web.StreamResponse:
    """Answer an overflow as `b.backend` does (`b`: the server's Behaviour)."""
    if streamed and (
        b.backend == "llamacpp-python" or (b.backend == "llama-server" and b.stream_error_as_event)
    ):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)  # status 200 either way
        if b.backend == "llama-server":
            await response.write(f"error: {json.dumps(refused.body['error'])}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()  # llama-cpp-python: not a single event
        return response
    return web.json_response(refused.body, status=refused.status)


def exceed_context_size(prompt: int, n_ctx: int) -> dict[str, Any]:
    return {
        "code": 400,
        "message": f"request ({prompt} tokens) exceeds the available context size ({n_ctx} tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": prompt,
        "n_ctx": n_ctx,
    }


CONTEXT_EXCEEDED_MID_ANSWER = {
    "code": 500,
    "message": "Context size has been exceeded.",
    "type": "server_error",
}


def _vllm(prompt: int, max_tokens: int, n_ctx: int, wording: str) -> dict[str, Any]:
    if wording == "new":
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {max_tokens} "
            f"output tokens and your prompt contains {prompt} input tokens, for a total of "
            f"{prompt + max_tokens} tokens. Please reduce the length of the input prompt or the "
            "number of requested output tokens."
        )
        return {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
    message = (
        f"This model's maximum context length is {n_ctx} tokens. However, you requested "
        f"{prompt + max_tokens} tokens ({prompt} in the messages, {max_tokens} in the completion). "
        "Please reduce the length of the messages or completion."
    )
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


def sends_usage(backend: str) -> bool:
    """Whether the backend sends a usage chunk when asked (stream_options.include_usage)."""
    return backend != "llamacpp-python"


# -- the other endpoints ------------------------------------------------------------------------


def models(backend: str, model: str, n_ctx: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model, "object": "model", "created": 0, "owned_by": "me"}
    if backend == "vllm" and n_ctx:
        entry |= {"owned_by": "vllm", "root": model, "parent": None, "max_model_len": n_ctx}
    if backend == "llama-server":
        entry |= {"owned_by": "llamacpp", "meta": {"n_ctx_train": 32768, "n_vocab": 32000}}
    if backend == "llamacpp-python":
        entry |= {"permissions": []}
    return {"object": "list", "data": [entry]}


def tokenize(backend: str, path: str, body: dict[str, Any], n_ctx: int | None) -> dict[str, Any] | None:
    """A tokenize endpoint's answer, or None where the backend has no such route or field."""
    if backend == "vllm" and path == "/tokenize":
        if "messages" in body:
            # HF chat templates write the BOS text themselves, hence add_special_tokens=false.
            text = BOS + template(body["messages"], body.get("add_generation_prompt", True))
            special = body.get("add_special_tokens", False)
        elif "prompt" in body:
            text, special = body["prompt"], body.get("add_special_tokens", True)
        else:
            return None
        tokens = ([BOS] if special else []) + toy_tokens(text)
        return {"count": len(tokens), "max_model_len": n_ctx or 0, "tokens": list(range(len(tokens)))}
    if backend == "llama-server" and path == "/tokenize":
        text = body.get("content", "")  # a body without content tokenizes nothing, as llama-server does
        tokens = ([BOS] if body.get("add_special") else []) + toy_tokens(
            text if isinstance(text, str) else ""
        )
        return {"tokens": list(range(len(tokens)))}
    if backend == "llamacpp-python" and path in ("/extras/tokenize", "/extras/tokenize/count"):
        if not isinstance(body.get("input"), str):
            return None
        tokens = [BOS, *toy_tokens(body["input"])]
        return {"count": len(tokens)} if path.endswith("/count") else {"tokens": list(range(len(tokens)))}
    return None


def apply_template(backend: str, body: dict[str, Any]) -> dict[str, Any] | None:
    if backend != "llama-server" or not isinstance(body.get("messages"), list):
        return None
    return {"prompt": template(body["messages"])}


def props(backend: str, n_ctx: int | None) -> dict[str, Any] | None:
    if backend != "llama-server":
        return None
    settings = {
        "id": 0,
        "id_task": -1,
        "n_ctx": n_ctx or 4096,
        "speculative": False,
        "params": {"n_predict": -1},
    }
    return {"default_generation_settings": settings, "total_slots": 1, "model_path": "/models/toy.gguf"}


def show(backend: str, n_ctx: int | None, set_in_modelfile: bool) -> dict[str, Any] | None:
    if backend != "ollama":
        return None
    parameters = f"num_ctx {n_ctx}\nstop <|im_end|>" if set_in_modelfile and n_ctx else "stop <|im_end|>"
    info = {"general.architecture": "llama", "llama.context_length": 131072}
    return {
        "modelfile": "FROM toy",
        "parameters": parameters,
        "template": "{{ .Prompt }}",
        "model_info": info,
    }


def ps(backend: str, model: str, n_ctx: int | None, loaded: bool) -> dict[str, Any] | None:
    if backend != "ollama":
        return None
    running = (
        [{"name": f"{model}:latest", "model": f"{model}:latest", "context_length": n_ctx}] if loaded else []
    )
    return {"models": running}


def routes(behaviour: Callable[[], Any]) -> web.RouteTableDef:
    """The backends' endpoints beside chat completions; 404 where the current backend has none."""
    table = web.RouteTableDef()

    def answer(payload: dict[str, Any] | None) -> web.Response:
        if payload is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response(payload)

    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    @table.get("/v1/models")
    async def listing(request: web.Request) -> web.Response:
        return answer(models(behaviour().backend, "toy", behaviour().n_ctx))

    @table.post("/tokenize")
    @table.post("/extras/tokenize")
    @table.post("/extras/tokenize/count")
    async def tokenizing(request: web.Request) -> web.Response:
        b = behaviour()
        await asyncio.sleep(b.tokenize_delay)
        return answer(tokenize(b.backend, request.path, await body_of(request), b.n_ctx))

    @table.post("/apply-template")
    async def templating(request: web.Request) -> web.Response:
        return answer(apply_template(behaviour().backend, await body_of(request)))

    @table.get("/props")
    async def properties(request: web.Request) -> web.Response:
        return answer(props(behaviour().backend, behaviour().n_ctx))

    @table.post("/api/show")
    async def showing(request: web.Request) -> web.Response:
        b = behaviour()
        return answer(show(b.backend, b.n_ctx, b.ollama_num_ctx_in_modelfile))

    @table.get("/api/ps")
    async def running(request: web.Request) -> web.Response:
        b = behaviour()
        return answer(ps(b.backend, "toy", b.n_ctx, b.ollama_loaded))

    return table
