"""Per-model token corrections learned from the prompt sizes servers report. Pure: no I/O.

The window counts each message once, with tiktoken or the model's own tokenizer. A server's
`usage.prompt_tokens` for the same prompt says how far that count is off (a chat template's
overhead, a tokenizer tiktoken only approximates). The ratio, smoothed and with outliers dropped,
scales the model's next prompts before admission; the stored per-message counts stay as counted.
"""

from __future__ import annotations

import enum
import statistics
from collections import deque
from dataclasses import dataclass, field

SMOOTHING = 0.3  # weight of a new sample in the moving average
RECENT = 9  # samples kept for the median that outliers are judged against
OUTLIER_FACTOR = 1.5  # a ratio this far from the recent median is not learned from
MIN_SAMPLES_FOR_OUTLIERS = 3
MIN_PROMPT_TOKENS = 16  # smaller prompts say too little about a ratio
TRUNCATED_BELOW = 0.6  # a server count under 60% of what was expected: it dropped part of the prompt
LOWEST, HIGHEST = 0.5, 4.0  # corrections are kept within these
MIN_SERVER_CONTEXT = 64  # a server claiming a smaller context is not believed (it would starve every chat)
MIN_CONTEXT_SHARE = 1 / 8  # nor one claiming less than this share of the chat's configured context
MARGIN = 0.95  # aim a shrunk prompt this far under what the server said it holds
SHRINK_WITHOUT_NUMBERS = 0.75  # with no numbers from the server, keep this share of the prompt


class Seen(enum.Enum):
    LEARNED = "learned"
    OUTLIER = "outlier"  # dropped: too far from the recent samples
    TRUNCATED = "truncated"  # far below the estimate: the server cut the prompt (Ollama does, silently)
    IGNORED = "ignored"  # no count (0, as Ollama once reported cached prompts), or too small a prompt


@dataclass(slots=True)
class _Model:
    correction: float = 1.0
    learned: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    server_context: int | None = None  # the smallest context size the server has reported


class Calibration:
    """What this gateway has learned about each model's server: a count ratio, its context size."""

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}

    def correction(self, model: str) -> float:
        """Server tokens per counted token for this model (1.0 until a server reports usage)."""
        known = self._models.get(model)
        return known.correction if known else 1.0

    def server_context(self, model: str) -> int | None:
        known = self._models.get(model)
        return known.server_context if known else None

    def observe(self, model: str, counted: int, reported: int) -> Seen:
        """Learn from one prompt: `counted` by the window, `reported` by the server."""
        if reported <= 0 or counted < MIN_PROMPT_TOKENS:
            return Seen.IGNORED
        m = self._models.setdefault(model, _Model())
        ratio = reported / counted
        if ratio < TRUNCATED_BELOW * m.correction:
            return Seen.TRUNCATED
        m.recent.append(ratio)
        if len(m.recent) > MIN_SAMPLES_FOR_OUTLIERS:
            median = statistics.median(m.recent)
            if not median / OUTLIER_FACTOR <= ratio <= median * OUTLIER_FACTOR:
                return Seen.OUTLIER
        # The first sample is taken whole: the next prompt should already be planned with it.
        value = ratio if m.learned == 0 else m.correction + SMOOTHING * (ratio - m.correction)
        m.correction = min(max(value, LOWEST), HIGHEST)
        m.learned += 1
        return Seen.LEARNED

    def learn_context(self, model: str, tokens: int, chat_context: int) -> bool:
        """The server said (or showed) that its context holds `tokens`; False if not believed.

        What is learnt plans every chat of the model in this gateway, so a claim far below the
        chat's configured context (a broken server, or an error message echoing what a user wrote)
        is not taken: that chat's turn still shrinks by it, no other chat does.
        """
        if tokens < max(MIN_SERVER_CONTEXT, chat_context * MIN_CONTEXT_SHARE):
            return False
        m = self._models.setdefault(model, _Model())
        if m.server_context is None or tokens < m.server_context:
            m.server_context = tokens
        return True


def shrink_target(
    counted: int,
    reserve_tokens: int,
    correction: float,
    server_prompt: int | None,
    server_context: int | None,
) -> int:
    """The prompt size, in counted tokens, to evict down to after a server refused `counted`.

    With the server's numbers: what its context holds once the answer's room is kept, converted
    with the server's own ratio for this prompt. Without them: a fixed share of the prompt.
    """
    if server_context is None or server_context < MIN_SERVER_CONTEXT:
        return max(1, int(counted * SHRINK_WITHOUT_NUMBERS))
    ratio = server_prompt / counted if server_prompt else correction
    room = server_context - reserve_tokens
    if room <= 0:
        return 1  # not even an empty prompt leaves room for max_tokens: evict all that can go
    return max(1, min(int(room / ratio * MARGIN), counted - 1))
