"""Chat parameters: the allowed ranges, and per-chat overrides checked against the model's limits."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateways.llm.context_windows import context_window
from gateways.service.text import check_unicode
from store.base import MAX_MODEL_LENGTH
from store.errors import InvalidArgument
from store.records import ChatParams

# name -> (lowest, highest) accepted; shared by the environment settings and per-chat overrides.
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
MAX_STOP_SEQUENCES = 4
MAX_SYSTEM_PROMPT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class ChatOverrides:
    """What a client may set when it creates a chat; None keeps the service default."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


def check_range(name: str, value: float) -> None:
    lo, hi = RANGES[name]
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} must be between {lo} and {hi}, got {value}")


def apply_overrides(defaults: ChatParams, o: ChatOverrides) -> ChatParams:
    """The defaults with the overrides applied; InvalidArgument names the first bad field."""
    params = defaults
    if o.model is not None and o.model != defaults.model:
        params = replace(params, model=o.model, context_tokens=_window_of(o.model))
        params = replace(params, max_tokens=min(params.max_tokens, params.context_tokens // 2))
    for name in RANGES:
        value = getattr(o, name)
        if value is not None:
            check_range(name, value)
            params = replace(params, **{name: value})
    if o.max_tokens is not None:
        if not 1 <= o.max_tokens < params.context_tokens:
            raise InvalidArgument(
                f"max_tokens must be between 1 and {params.context_tokens - 1} for "
                f"{params.model}, got {o.max_tokens}"
            )
        params = replace(params, max_tokens=o.max_tokens)
    if o.stop is not None:
        params = replace(params, stop=_stops(o.stop))
    return params


def check_system_prompt(prompt: str) -> str:
    if len(prompt) > MAX_SYSTEM_PROMPT_CHARS:
        raise InvalidArgument(f"system_prompt is longer than {MAX_SYSTEM_PROMPT_CHARS} characters")
    return check_unicode("system_prompt", prompt)


def _window_of(model: str) -> int:
    if not model.strip() or len(model) > MAX_MODEL_LENGTH:
        raise InvalidArgument(f"model must be 1 to {MAX_MODEL_LENGTH} characters")
    check_unicode("model", model)
    window = context_window(model)
    if window is None:
        raise InvalidArgument(
            f"model {model!r} has no known context window; use a known model or the default"
        )
    return window


def _stops(stop: tuple[str, ...]) -> tuple[str, ...]:
    stops = tuple(check_unicode("stop", s) for s in stop if s)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise InvalidArgument(f"stop takes at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}")
    return stops
