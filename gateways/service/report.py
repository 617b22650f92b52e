"""What a turn reports as it runs: its log lines (ids attached by gateways/logs.py) and its metrics."""

from __future__ import annotations

import asyncio
import logging
import time

from actors.protocol import TurnPlan
from gateways import metrics
from store.errors import ChatServiceError, ResourceExhausted, Unavailable

log = logging.getLogger("chatservice.turn")


class TurnReport:
    """One turn's clock, log lines and metrics. Message text is logged only with LOG_CONTENT=1."""

    def __init__(self, log_content: bool) -> None:
        self._log_content = log_content
        self._started = time.monotonic()
        self._first_token: float | None = None
        self._model = "unknown"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def not_begun(self, exc: BaseException) -> None:
        """The turn never reached the LLM: refused, store or actor unavailable, or abandoned."""
        if isinstance(exc, Unavailable):
            outcome = "unavailable"
        elif isinstance(exc, ChatServiceError):
            outcome = "rejected"
        else:
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
        metrics.turn_ended(outcome)
        reason = exc.code if isinstance(exc, ChatServiceError) else type(exc).__name__
        log.info("turn %s before it began: %s", outcome, reason)

    def begun(self, plan: TurnPlan, content: str) -> None:
        self._model = plan.params.model
        metrics.turn_begun(plan.evicted)
        w = plan.window
        log.info(
            "turn began: model %s, window %d messages / %d tokens, %d evicted",
            plan.params.model,
            w.messages,
            w.tokens,
            plan.evicted,
        )
        if self._log_content:
            log.info("user message: %s", content)

    def token(self) -> None:
        """Call on every delta; the first one gives the time to first token."""
        if self._first_token is None:
            self._first_token = self.elapsed
            metrics.first_token(self._model, self._first_token)

    def llm_failed(self, exc: ChatServiceError) -> None:
        metrics.turn_ended("llm_error")
        # A refusal quotes the LLM server's own message, which may quote the request (vLLM's
        # validation errors include the offending input): logged only with LOG_CONTENT=1.
        ours = isinstance(exc, Unavailable | ResourceExhausted)
        why = (
            exc.message
            if ours or self._log_content
            else "the LLM's message is withheld (LOG_CONTENT=1 logs it)"
        )
        log.warning("turn failed in the LLM after %.3f s: %s: %s", self.elapsed, exc.code, why)

    def cancelled(self) -> None:
        metrics.turn_ended("cancelled")
        log.info("turn cancelled by the client after %.3f s", self.elapsed)

    def not_stored(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled()  # the client left while the answer was being stored
            return
        metrics.turn_ended("failed")
        reason = exc.code if isinstance(exc, ChatServiceError) else type(exc).__name__  # no message text
        log.warning("turn's answer could not be stored after %.3f s: %s", self.elapsed, reason)

    def completed(self, finish_reason: str, prompt_tokens: int, completion_tokens: int, answer: str) -> None:
        seconds = self.elapsed
        metrics.turn_completed(self._model, seconds, prompt_tokens, completion_tokens)
        ttft = "-" if self._first_token is None else f"{self._first_token:.3f} s"
        log.info(
            "turn completed in %.3f s (first token after %s): finish %s, %d prompt + %d completion tokens",
            seconds,
            ttft,
            finish_reason,
            prompt_tokens,
            completion_tokens,
        )
        if self._log_content:
            log.info("answer: %s", answer)
