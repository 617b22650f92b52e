"""The service's one error tree: every layer translates what it catches into these."""

from __future__ import annotations


class ChatServiceError(Exception):
    """Base of every error a client may see; `code` is stable and machine-readable."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[ChatServiceError], tuple[str]]:
        # Errors cross Ray process boundaries; keep pickling to the one message argument.
        return (type(self), (self.message,))


class InvalidArgument(ChatServiceError):
    code = "invalid_argument"


class MessageTooLarge(InvalidArgument):
    code = "message_too_large"


class ContextOverflow(MessageTooLarge):
    """The LLM server refused the prompt as larger than its context.

    Raised by the LLM adapter with what the server said (its count of the prompt, its context
    size) when it said it; the service evicts more and retries once before a client sees it.
    """

    code = "context_overflow"

    def __init__(
        self, message: str, server_prompt_tokens: int | None = None, server_context_tokens: int | None = None
    ) -> None:
        super().__init__(message)
        self.server_prompt_tokens = server_prompt_tokens
        self.server_context_tokens = server_context_tokens


class Unauthenticated(ChatServiceError):
    code = "unauthenticated"


class PermissionDenied(ChatServiceError):
    code = "permission_denied"


class NotFound(ChatServiceError):
    code = "not_found"


class AlreadyExists(ChatServiceError):
    code = "already_exists"


class FailedPrecondition(ChatServiceError):
    code = "failed_precondition"


class ResourceExhausted(ChatServiceError):
    code = "resource_exhausted"


class Unavailable(ChatServiceError):
    code = "unavailable"


class StreamBroken(Unavailable):
    """The LLM's answer ended without saying it was finished (cut, or empty); any part is kept."""

    code = "stream_broken"

    def __init__(self, message: str, empty: bool = False) -> None:
        super().__init__(message)
        self.empty = empty  # nothing at all arrived: what a server does with a prompt it cannot fit


class StaleState(Unavailable):
    """Another activation of the chat wrote first; the holder must reload before writing."""

    code = "stale_state"


class Passivating(Unavailable):
    """The conversation actor reached is ending its activation; the registry retries on a fresh one."""

    code = "passivating"


class DeadlineExceeded(ChatServiceError):
    code = "deadline_exceeded"


class Cancelled(ChatServiceError):
    code = "cancelled"


class UnsupportedMediaType(InvalidArgument):
    """A body in a format the route does not take (a JSON route, a body without a JSON type)."""

    code = "unsupported_media_type"


class MisdirectedRequest(PermissionDenied):
    """A Host header this service does not answer to (as a DNS-rebinding page would send)."""

    code = "misdirected_request"


class RequestTimeout(InvalidArgument):
    """A request that did not arrive in time (a body trickled in slower than READ_TIMEOUT_SECONDS)."""

    code = "request_timeout"
