"""The LLM side of a turn: stream the answer, learn from what the server counted, recover overflows.

A prompt the server refuses as too large (ContextOverflow, or the empty stream llama.cpp servers
send instead) is shrunk through the conversation (`shrink_turn`: older messages evicted and the
erasures stored) and sent once more; only then does the client get the error, naming the window.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from actors.port import Conversations
from actors.protocol import TurnPlan, TurnResult
from gateways import metrics
from gateways.llm.calibration import Calibration, Seen, shrink_target
from gateways.llm.client import LLM, Delta, Finish
from gateways.llm.counting import TokenCounter
from gateways.service.events import TurnFinished
from store.errors import ContextOverflow, StreamBroken

log = logging.getLogger("chatservice.turn")
Answer = Delta | Finish | TurnPlan
Rewrite = Callable[[TurnPlan], Awaitable[TurnPlan]]  # the plan as the LLM is sent it (images added)


class Answering:
    """Runs the LLM request of a turn (one process-wide instance, shared by every chat)."""

    def __init__(
        self, llm: LLM, conversations: Conversations, calibration: Calibration, counter: TokenCounter
    ) -> None:
        self._llm = llm
        self._conversations = conversations
        self.calibration = calibration
        self._counter = counter

    async def stream(
        self, chat_id: str, plan: TurnPlan, rewrite: Rewrite | None = None
    ) -> AsyncGenerator[Answer, None]:
        """Deltas, then a Finish; a new TurnPlan in between if the prompt was shrunk for a retry.

        `rewrite` turns each plan, the shrunk one too, into the request sent (it may read the store).
        """
        unexplained: TurnPlan | None = None  # a prompt refused with no numbers (an empty answer)
        for attempt in (1, 2):
            text = False
            try:
                sent = await rewrite(plan) if rewrite is not None else plan
                async with aclosing(self._llm.stream(sent)) as events:
                    async for event in events:
                        if isinstance(event, Finish):
                            self._learn(chat_id, plan, event, unexplained)
                        text = text or isinstance(event, Delta)
                        yield event
                return
            except ContextOverflow as exc:
                self._learn_overflow(chat_id, plan, exc)
                failure: ContextOverflow | StreamBroken = exc
            except StreamBroken as exc:
                if not exc.empty:
                    raise
                failure, unexplained = exc, plan
            if text:
                # The server ran out of room mid-answer: the client has part of it, so no retry,
                # but the next turn should fit.
                await self._shrink(chat_id, plan, failure)
                raise StreamBroken(f"the LLM server ran out of context mid-answer: {failure.message}")
            shrunk = await self._shrink(chat_id, plan, failure) if attempt == 1 else plan
            if shrunk.window.tokens >= plan.window.tokens:
                raise _final(chat_id, shrunk, failure, retried=attempt == 2)
            log.warning(
                "chat %s: %s; %d more message(s) evicted (window now %d tokens), sending once more",
                chat_id,
                failure.message,
                shrunk.evicted - plan.evicted,
                shrunk.window.tokens,
            )
            plan = shrunk
            yield plan

    async def finished(self, plan: TurnPlan, result: TurnResult, tokens: int, finish: Finish) -> TurnFinished:
        """The turn's end; usage is the server's when it sent it, else this service's estimate.

        `tokens`: the answer as the window counted it (the completion is that less its overhead).
        """
        model = plan.params.model
        prompt, completion = finish.prompt_tokens, finish.completion_tokens
        source = "server" if prompt is not None and completion is not None else "estimate"
        if prompt is None:
            prompt = round(plan.window.tokens * self.calibration.correction(model))
        if completion is None:
            completion = max(tokens - await self._counter.overhead(model, "assistant"), 0)
        return TurnFinished(
            assistant_message_id=result.assistant_message_id,
            finish_reason=result.finish_reason,
            prompt_tokens=prompt,
            completion_tokens=completion,
            evicted=plan.evicted,
            window=result.window,
            usage_source=source,
        )

    async def _shrink(
        self, chat_id: str, plan: TurnPlan, failure: ContextOverflow | StreamBroken
    ) -> TurnPlan:
        model = plan.params.model
        overflow = failure if isinstance(failure, ContextOverflow) else None
        target = shrink_target(
            plan.window.tokens,
            plan.params.max_tokens,
            self.calibration.correction(model),
            overflow.server_prompt_tokens if overflow else None,
            overflow.server_context_tokens if overflow else None,
        )
        return await self._conversations.shrink_turn(chat_id, plan.turn_id, target, plan.user_message_id)

    def _learn(self, chat_id: str, plan: TurnPlan, finish: Finish, refused: TurnPlan | None) -> None:
        model = plan.params.model
        if refused is not None:
            # The server answered nothing for `refused` and answered this smaller prompt: its
            # context is below `refused`'s size (estimated in its tokens), so plan under that.
            size = round(refused.window.tokens * self.calibration.correction(model))
            self.calibration.learn_context(model, size, plan.params.context_tokens)
        if finish.prompt_tokens is None:
            return
        seen = self.calibration.observe(model, plan.window.tokens, finish.prompt_tokens)
        if seen is Seen.LEARNED:
            metrics.correction(model, self.calibration.correction(model))
        elif seen is Seen.TRUNCATED:
            metrics.llm_error("truncated")
            log.warning(
                "chat %s: the LLM server counted %d prompt tokens where about %d were sent: it "
                "dropped part of the prompt (Ollama silently cuts its front beyond num_ctx); set "
                "MODEL_MAX_TOKENS to the server's context",
                chat_id,
                finish.prompt_tokens,
                round(plan.window.tokens * self.calibration.correction(model)),
            )

    def _learn_overflow(self, chat_id: str, plan: TurnPlan, exc: ContextOverflow) -> None:
        model = plan.params.model
        log.warning("chat %s: context overflow: %s", chat_id, exc.message)
        prompt = exc.server_prompt_tokens
        if prompt and self.calibration.observe(model, plan.window.tokens, prompt) is Seen.LEARNED:
            metrics.correction(model, self.calibration.correction(model))
        if exc.server_context_tokens and not self.calibration.learn_context(
            model, exc.server_context_tokens, plan.params.context_tokens
        ):
            log.warning(
                "chat %s: the LLM server's claim of a %d-token context is not applied to other chats",
                chat_id,
                exc.server_context_tokens,
            )


def _final(
    chat_id: str, plan: TurnPlan, failure: ContextOverflow | StreamBroken, retried: bool
) -> ContextOverflow | StreamBroken:
    """The error the client gets, naming the chat's window."""
    w = plan.window
    window = (
        f"chat {chat_id}'s window is {w.messages} messages, {w.tokens} of {w.context_tokens} tokens "
        f"by this service's count"
    )
    done = (
        "after older messages were evicted and it was sent again"
        if retried
        else "and nothing more can be evicted"
    )
    if isinstance(failure, ContextOverflow):
        return ContextOverflow(
            f"{failure.message}, {done}; {window}: shorten the message",
            failure.server_prompt_tokens,
            failure.server_context_tokens,
        )
    return StreamBroken(f"{failure.message} ({done}; {window})", empty=True)
