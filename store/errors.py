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
