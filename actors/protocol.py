"""What gateways send a conversation and what it answers: plain picklable records."""

from __future__ import annotations

from dataclasses import dataclass

from store.records import ChatParams, MessageStatus


@dataclass(frozen=True, slots=True)
class NewChat:
    """How to create the chat if it does not exist yet."""

    params: ChatParams
    system_prompt: str
    system_tokens: int


@dataclass(frozen=True, slots=True)
class Regenerate:
    """Answer again: a new answer beside answer `message_id`, or under user message `message_id`.

    None: the active path's last message (its last answer, or its last user message if that has
    no answer). The prompt is the path down to the user message answered; it sends no new message.
    """

    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """The request's content as a new user message beside user message `message_id` (same parent).

    The prompt is the path down to that parent, then the new message; the earlier branch stays.
    """

    message_id: int


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """A user message, counted by the gateway with the tokenizer of `counted_for` (a model).

    `correction`: what the model's server counts per counted token, and `server_context` the
    context size the server said it has, if smaller than the chat's (the gateway's calibration):
    the window admits the prompt only if it fits as the server counts it (state.scale_for).
    `branch`: None for a new message after the active leaf; a Regenerate (with no content and
    0 tokens) or an Edit otherwise. Neither creates a chat.
    """

    turn_id: str
    user_id: str
    content: str
    tokens: int
    counted_for: str
    create: NewChat | None = None
    correction: float = 1.0
    server_context: int | None = None
    branch: Regenerate | Edit | None = None


@dataclass(frozen=True, slots=True)
class Recount:
    """The chat uses another model than the gateway counted for: count again and resend."""

    model: str


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """What the model will see: message count and tokens of the context window.

    `tokens` is the window's own count; `server_prompt_tokens` the prompt size the model's server
    last reported for this chat, and `correction` the scale the window was last planned with
    (both None until a turn since the chat's actor was activated).
    """

    messages: int
    tokens: int
    context_tokens: int
    server_prompt_tokens: int | None = None
    correction: float | None = None


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """Everything the gateway needs to ask the LLM for this turn's answer.

    `user_message_id`: the user message the turn answers (and the active leaf while it runs): a
    new one, or for a regenerate an existing one; pass it back to complete, abort, renew and shrink
    so that a fresh activation can take over a regenerate (nothing of which is stored before its
    answer). `siblings`: the messages beside the turn's new message (same parent) before it was
    added, in order (an edit's earlier versions, a regenerate's earlier answers; the new message
    comes after them); None when not looked up (a new message, a resumed turn, a regenerate of an
    unanswered message). `seqs`: the stored seq of each of `messages`, in order (a gateway loads
    what the store keeps beside a message, such as a WhatsApp image's bytes, by it).
    """

    turn_id: str
    chat_id: str
    created: bool
    user_message_id: int
    messages: tuple[dict[str, str], ...]
    params: ChatParams
    evicted: int
    window: WindowInfo
    siblings: tuple[int, ...] | None = None
    seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TurnResult:
    """How a turn ended: the stored answer's id (None when nothing was stored), the active leaf after it.

    A regenerate that stores nothing (aborted before any text) moves the active leaf back where it was.
    """

    turn_id: str
    assistant_message_id: int | None
    status: MessageStatus | None
    finish_reason: str
    window: WindowInfo
    active_leaf: int | None = None
