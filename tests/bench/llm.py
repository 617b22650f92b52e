"""The test LLM for the benchmark: tests.llm_server's FakeLLM, with settable latency and no request log."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from aiohttp import web

from tests.llm_server import Behaviour, FakeLLM, words_reply


@dataclass(frozen=True, slots=True)
class Profile:
    """What the LLM is configured to take: time to first token, time between tokens, answer length."""

    ttft: float
    token_delay: float
    words: int

    @property
    def total(self) -> float:
        """The LLM's own time for a whole answer (the first token, then one delay per further token)."""
        return self.ttft + self.token_delay * (self.words - 1)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


class BenchLLM(FakeLLM):
    """FakeLLM that keeps no record of requests (a long run would otherwise hold every prompt)."""

    def configure(self, profile: Profile) -> None:
        self.behaviour = Behaviour(
            ttft=profile.ttft, token_delay=profile.token_delay, reply=words_reply(profile.words)
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._completions(request)
        finally:
            self.records.clear()
