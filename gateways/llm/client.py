"""The LLM port and its OpenAI-compatible implementation (openai SDK, streaming, errors translated)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import openai

from actors.protocol import TurnPlan
from gateways import metrics
from gateways.llm.overflow import overflow_of
from store.errors import (
    ChatServiceError,
    ContextOverflow,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    StreamBroken,
    Unavailable,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of an answer the server said it finished; the counts are the server's, if it sent them."""

    reason: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


LLMEvent = Delta | Finish


class LLM(Protocol):
    """Streams one answer: Delta events, then exactly one Finish. Errors are ChatServiceErrors.

    A Finish is sent only for an answer the server ended with a finish reason and some text: a
    stream that stops short is StreamBroken (after the deltas that did arrive), and a prompt the
    server finds too large is ContextOverflow.
    """

    def stream(self, plan: TurnPlan) -> AsyncGenerator[LLMEvent, None]: ...

    async def close(self) -> None: ...


def request_args(plan: TurnPlan) -> dict[str, Any]:
    """Chat Completions arguments for a plan: only the parameters the chat sets."""
    p = plan.params
    args: dict[str, Any] = {
        "model": p.model,
        "messages": list(plan.messages),
        "max_tokens": p.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "temperature": p.temperature,
        "top_p": p.top_p,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "stop": list(p.stop) or None,
        "n": p.n if p.n != 1 else None,
    }
    args.update({k: v for k, v in optional.items() if v is not None})
    return args


def translate(exc: Exception) -> ChatServiceError:
    """The error tree's view of an SDK or transport error."""
    if isinstance(exc, openai.RateLimitError):
        return ResourceExhausted("the LLM is rate-limiting this service; retry in a moment")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return Unavailable("the LLM rejected the service's credentials; an operator must fix OPENAI_API_KEY")
    if isinstance(exc, openai.NotFoundError):
        return FailedPrecondition(f"the LLM does not serve this chat's model: {exc.message}")
    if isinstance(exc, (openai.BadRequestError, openai.UnprocessableEntityError)):
        return InvalidArgument(f"the LLM rejected the request: {exc.message}")
    if isinstance(exc, openai.APITimeoutError):
        return Unavailable("the LLM did not answer in time; retry shortly")
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable("cannot reach the LLM; retry shortly")
    if isinstance(exc, openai.APIStatusError) and exc.status_code < 500:
        return InvalidArgument(f"the LLM refused the request ({exc.status_code}): {exc.message}")
    return Unavailable("the LLM failed while answering; retry shortly")


BROKE_OFF = "the LLM's answer broke off mid-way (the part received is kept); retry"
ENDED_EARLY = (
    "the LLM's answer ended without a finish reason (the part received is kept; a llama.cpp server "
    "cuts a running answer when another request arrives); retry"
)
EMPTY = "the LLM ended its answer without sending any of it; retry"
NO_ROOM = "the LLM server stopped at once for lack of room: the prompt fills its context"


def error_kind(exc: Exception) -> str:
    """A short label for an SDK or transport error, for the LLM error metric."""
    kinds: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
        (openai.RateLimitError, "rate_limited"),
        ((openai.AuthenticationError, openai.PermissionDeniedError), "auth"),
        (openai.NotFoundError, "not_found"),
        ((openai.BadRequestError, openai.UnprocessableEntityError), "bad_request"),
        (openai.APITimeoutError, "timeout"),
        (openai.APIConnectionError, "connection"),
    )
    for types, kind in kinds:
        if isinstance(exc, types):
            return kind
    if isinstance(exc, openai.APIStatusError):
        return "client_error" if exc.status_code < 500 else "server_error"
    return "stream_broken"


def failed(exc: Exception) -> ChatServiceError:
    """Count the failure, then translate it; a context overflow in any shape is ContextOverflow."""
    if isinstance(exc, openai.APIError):
        overflow = overflow_of(exc.body, exc.message)
        if overflow is not None:
            metrics.llm_error("context_overflow")
            said = [f"it counted {overflow.prompt_tokens} tokens"] if overflow.prompt_tokens else []
            said += [f"its context holds {overflow.context_tokens}"] if overflow.context_tokens else []
            detail = f" ({'; '.join(said)})" if said else ""
            return ContextOverflow(
                f"the LLM server refused the prompt as larger than its context{detail}",
                overflow.prompt_tokens,
                overflow.context_tokens,
            )
        if not isinstance(exc, openai.APIStatusError | openai.APIConnectionError):
            # An error event inside a stream that had begun: the answer broke off.
            metrics.llm_error("stream_broken")
            return StreamBroken(f"the LLM reported an error mid-answer ({exc.message[:200]}); retry")
    metrics.llm_error(error_kind(exc))
    return translate(exc)


def broken(chunks: int) -> StreamBroken:
    """A stream that ended in order but unfinished; `empty` only if not a single event came."""
    metrics.llm_error("stream_broken")
    return StreamBroken(EMPTY if chunks == 0 else ENDED_EARLY, empty=chunks == 0)


class OpenAIChat:
    """Any OpenAI-compatible server through AsyncOpenAI; the SDK retries 429/5xx before we see them."""

    def __init__(self, api_key: str, base_url: str | None, timeout: float, max_retries: int = 2) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
        )

    async def stream(self, plan: TurnPlan) -> AsyncGenerator[LLMEvent, None]:
        try:
            # client.post rather than chat.completions.create: create() first walks every message
            # through the SDK's TypedDict transform (about 1 ms a message here, 200 ms for a
            # 200-message window), which changes nothing in plain role/content messages.
            stream = await self._client.post(
                "/chat/completions",
                body=request_args(plan),
                # Chunks as plain dicts: a ChatCompletionChunk model costs ~50 us to build, per token.
                cast_to=dict,
                stream=True,
                stream_cls=openai.AsyncStream[dict[str, Any]],
            )
        except Exception as exc:
            raise failed(exc) from exc
        reason: str | None = None
        usage = None
        text = False
        chunks = 0
        # Leaving this block (finished, failed or cancelled) closes the HTTP response, so a
        # client that goes away stops the generation it was paying for.
        async with stream:
            try:
                async for chunk in stream:
                    chunks += 1
                    usage = _field(chunk, "usage", dict) or usage
                    for choice in _field(chunk, "choices", list) or ():
                        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                            continue
                        content = _field(_field(choice, "delta", dict), "content", str)
                        if content:
                            text = True
                            yield Delta(content)
                        reason = _field(choice, "finish_reason", str) or reason
            except Exception as exc:
                # An error event in the stream (the SDK raises APIError) or a silence past the
                # timeout: say which. Otherwise the SDK's connection error or the transport's
                # own exception, by SDK version: either way the answer broke off.
                timeout = isinstance(exc, openai.APITimeoutError)
                if timeout or (
                    isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError)
                ):
                    raise failed(exc) from exc
                metrics.llm_error("stream_broken")
                raise StreamBroken(BROKE_OFF) from exc
        yield finish(reason, text, usage, chunks)

    async def close(self) -> None:
        await self._client.close()


def _field(mapping: Any, key: str, kind: type[T]) -> T | None:
    """mapping[key] if mapping is a dict and the value is of `kind` (servers differ in what they omit)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, kind) else None


def finish(reason: str | None, text: bool, usage: dict[str, Any] | None, chunks: int) -> Finish:
    """The Finish of a stream that ended in order, or why it is not one."""
    if reason is None:
        # [DONE] (or the end of the body) with no finish reason: cut short (llama-cpp-python ends
        # a running answer so when another request arrives), or with not a single event, which is
        # how llama.cpp servers answer a streamed prompt larger than their context.
        raise broken(chunks)
    if not text:
        if reason == "length" and not _field(usage, "completion_tokens", int):
            # Stopped for length before a single token: the prompt left no room.
            metrics.llm_error("context_overflow")
            raise ContextOverflow(NO_ROOM)
        metrics.llm_error("stream_broken")
        raise StreamBroken(f"the LLM finished ({reason}) without answering anything; retry")
    return Finish(reason, _field(usage, "prompt_tokens", int), _field(usage, "completion_tokens", int))
