"""What serve learns from the LLM server at start-up: the context size, and whether it can count tokens.

Servers and what they say about their context (each shape is replayed by tests/llm_backends.py):
- vLLM: `GET /v1/models` lists `{"id", "max_model_len", ...}` per served model.
- llama.cpp `llama-server`: `GET /props` has `default_generation_settings.n_ctx` (a slot's context;
  `/v1/models`' `meta.n_ctx_train` is the training context, not what the server was started with).
- Ollama: `POST /api/show {"model"}` has `parameters` ("num_ctx 8192" when a Modelfile sets it) and
  `model_info["<arch>.context_length"]` (the trained maximum); `GET /api/ps` has `context_length`
  of a loaded model. Unset, Ollama runs a model with a 4096-token context (more on large GPUs, or
  OLLAMA_CONTEXT_LENGTH) and silently drops the front of a longer prompt.
- llama-cpp-python: nothing (`/v1/models` lists ids only): MODEL_MAX_TOKENS must be set.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from gateways.llm.context_windows import context_window
from gateways.llm.counting import TokenCounter
from gateways.llm.endpoints import LLMServer
from gateways.settings import Settings, SettingsError

log = logging.getLogger("chatservice")
OLLAMA_DEFAULT_CONTEXT = 4096  # what Ollama gives a model whose num_ctx nobody set (small GPUs, CPU)
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Discovered:
    tokens: int
    source: str  # where the number came from, for the start-up log


async def inspect_server(settings: Settings) -> Settings:
    """Settings with the default model's context size known; SettingsError naming what to set.

    An unknown model with no MODEL_MAX_TOKENS gets the size its server reports; an explicit
    MODEL_MAX_TOKENS larger than the server's is a warning; TOKENIZER=server needs an endpoint.
    """
    if settings.offline or settings.openai_base_url is None:
        if settings.tokenizer == "server":
            raise SettingsError("TOKENIZER=server needs OPENAI_BASE_URL: a server with a tokenize endpoint")
        return settings  # OpenAI itself, or the offline responder: the known-model table holds
    model = settings.default_params.model
    server = LLMServer(settings.openai_base_url, settings.openai_api_key)
    try:
        if settings.tokenizer == "server":
            await _check_tokenizer(server, model)
        if settings.model_max_tokens is None and context_window(model) is not None:
            return settings
        found = await discover_context(server, model)
    finally:
        await server.close()
    explicit = settings.model_max_tokens
    if explicit is not None:
        if found is not None and found.tokens < explicit:
            log.warning(
                "MODEL_MAX_TOKENS=%d is larger than the %d tokens the LLM server runs %s with (%s): "
                "long chats will be refused or cut by the server; set it to %d",
                explicit,
                found.tokens,
                model,
                found.source,
                found.tokens,
            )
        return settings
    if found is None:
        raise SettingsError(
            f"MODEL_MAX_TOKENS: unset, model {model!r} is unknown, and the LLM server at "
            f"{server.base_url} does not report its context size; set MODEL_MAX_TOKENS"
        )
    log.info("context window of %s: %d tokens, from %s", model, found.tokens, found.source)
    return settings.with_context(found.tokens)


async def _check_tokenizer(server: LLMServer, model: str) -> None:
    try:
        await TokenCounter("server", server).check(model)  # logs what it found
    except ValueError as exc:
        raise SettingsError(f"TOKENIZER=server: {exc} at {server.root}; use TOKENIZER=auto") from None


async def discover_context(server: LLMServer, model: str) -> Discovered | None:
    """The context size the server runs `model` with, from whichever endpoint answers."""
    for probe in (_vllm, _llama_server, _ollama):
        found = await probe(server, model)
        if found is not None:
            return found
    return None


async def _vllm(server: LLMServer, model: str) -> Discovered | None:
    listing = await server.get(f"{server.base_url}/models")
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        return None
    # The model's own entry; a lone entry is what the server serves whatever the name.
    mine = [e for e in entries if isinstance(e, dict) and e.get("id") == model] or (
        entries if len(entries) == 1 else []
    )
    size = _positive(mine[0].get("max_model_len")) if mine and isinstance(mine[0], dict) else None
    return Discovered(size, "vLLM GET /v1/models max_model_len") if size else None


async def _llama_server(server: LLMServer, model: str) -> Discovered | None:
    props = await server.get(f"{server.root}/props")
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    size = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return Discovered(size, "llama.cpp GET /props default_generation_settings.n_ctx") if size else None


async def _ollama(server: LLMServer, model: str) -> Discovered | None:
    show = await server.post(f"{server.root}/api/show", {"model": model, "name": model})
    if not isinstance(show, dict):
        return None
    loaded = await _ollama_loaded(server, model)
    if loaded:
        return Discovered(loaded, "Ollama GET /api/ps context_length (the loaded model)")
    params = show.get("parameters")
    match = _NUM_CTX.search(params) if isinstance(params, str) else None
    if match:
        return Discovered(int(match.group(1)), "Ollama POST /api/show parameters num_ctx")
    info = show.get("model_info")
    items = info.items() if isinstance(info, dict) else ()
    trained = [_positive(v) for k, v in items if isinstance(k, str) and k.endswith(".context_length")]
    limit = min([t for t in trained if t] + [OLLAMA_DEFAULT_CONTEXT])
    return Discovered(
        limit, f"Ollama's default num_ctx ({OLLAMA_DEFAULT_CONTEXT}) or the model's trained length"
    )


async def _ollama_loaded(server: LLMServer, model: str) -> int | None:
    ps = await server.get(f"{server.root}/api/ps")
    running = ps.get("models") if isinstance(ps, dict) else None
    for entry in running if isinstance(running, list) else []:
        names = {entry.get("name"), entry.get("model")} if isinstance(entry, dict) else set()
        if model in names or f"{model}:latest" in names:
            return _positive(entry.get("context_length"))
    return None


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
