"""The error tree mapped to gRPC status codes (the mirror of gateways/http/errors.py)."""

from __future__ import annotations

import grpc

from store import errors as e

GRPC_STATUS: dict[type[e.ChatServiceError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.MessageTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    e.ContextOverflow: grpc.StatusCode.INVALID_ARGUMENT,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.Cancelled: grpc.StatusCode.CANCELLED,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
    e.StreamBroken: grpc.StatusCode.UNAVAILABLE,
    e.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    e.ChatServiceError: grpc.StatusCode.INTERNAL,
}


def grpc_status(exc: e.ChatServiceError) -> grpc.StatusCode:
    """The code of the nearest class in the exception's ancestry that the table names."""
    for cls in type(exc).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL
