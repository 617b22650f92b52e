"""The built-in offline responder: a deterministic answer when no LLM is configured."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from actors.protocol import TurnPlan
from gateways.llm.client import Delta, Finish, LLMEvent

QUOTE_CHARS = 200


def offline_answer(plan: TurnPlan) -> str:
    """Says it is offline, what the window holds, and echoes the question."""
    said = plan.messages[-1]["content"] if plan.messages else ""
    if len(said) > QUOTE_CHARS:
        said = said[: QUOTE_CHARS - 1] + "…"
    w = plan.window
    return (
        "[offline] No language model is configured (OPENAI_API_KEY is not set), so this is the "
        f"built-in offline responder. This chat's window holds {w.messages} messages, "
        f"{w.tokens} of {w.context_tokens} tokens. You said: {said}"
    )


class OfflineResponder:
    """Streams `offline_answer` word by word, like a model would."""

    async def stream(self, plan: TurnPlan) -> AsyncGenerator[LLMEvent, None]:
        for word in re.findall(r"\S+\s*", offline_answer(plan)):
            yield Delta(word)
        yield Finish("stop")

    async def close(self) -> None:
        return None
