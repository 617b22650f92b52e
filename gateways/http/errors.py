"""The error tree mapped to HTTP statuses, and the one JSON shape errors take."""

from __future__ import annotations

from typing import Any

from store import errors as e

HTTP_STATUS: dict[type[e.ChatServiceError], int] = {
    e.InvalidArgument: 400,
    e.MessageTooLarge: 413,
    e.RequestTimeout: 408,
    e.UnsupportedMediaType: 415,
    e.MisdirectedRequest: 421,
    e.ContextOverflow: 413,  # the chat's window plus this message do not fit the model's server
    e.Unauthenticated: 401,
    e.PermissionDenied: 403,
    e.NotFound: 404,
    e.AlreadyExists: 409,
    e.FailedPrecondition: 409,
    e.ResourceExhausted: 429,
    e.Cancelled: 499,
    e.Unavailable: 503,
    e.StreamBroken: 503,  # the answer broke off; what arrived is kept, flagged interrupted
    e.DeadlineExceeded: 504,
    e.ChatServiceError: 500,
}


def http_status(exc: e.ChatServiceError) -> int:
    """The status of the nearest class in the exception's ancestry that the table names."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_body(exc: e.ChatServiceError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message}}
