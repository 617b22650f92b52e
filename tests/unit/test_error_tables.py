"""Every error in the tree has an HTTP status; subclasses inherit their parent's."""

from __future__ import annotations

import pickle

import pytest

from gateways.http.errors import HTTP_STATUS, error_body, http_status
from store import errors as e

TREE = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.ChatServiceError)]


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_maps_to_a_status_and_survives_pickling(cls: type[e.ChatServiceError]) -> None:
    exc = cls("what to do")
    assert 400 <= http_status(exc) <= 599
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls and copy.message == "what to do"
    assert error_body(exc) == {"error": {"code": cls.code, "message": "what to do"}}


def test_specific_statuses() -> None:
    assert http_status(e.MessageTooLarge("x")) == 413
    assert http_status(e.StaleState("x")) == HTTP_STATUS[e.Unavailable] == 503
    assert http_status(e.Unauthenticated("x")) == 401
