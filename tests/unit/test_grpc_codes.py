"""Every error in the tree has a gRPC code (never UNKNOWN or OK), and the generated code is current."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from gateways.rpc.codegen import GEN_DIR, generate
from gateways.rpc.errors import GRPC_STATUS, grpc_status
from store import errors as e

TREE = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.ChatServiceError)]


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_has_a_code(cls: type[e.ChatServiceError]) -> None:
    assert grpc_status(cls("x")) not in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN)


def test_the_codes_the_api_documents() -> None:
    c = grpc.StatusCode
    assert grpc_status(e.MessageTooLarge("x")) is c.INVALID_ARGUMENT
    assert grpc_status(e.StaleState("x")) is GRPC_STATUS[e.Unavailable] is c.UNAVAILABLE
    assert grpc_status(e.ResourceExhausted("x")) is c.RESOURCE_EXHAUSTED
    assert grpc_status(e.DeadlineExceeded("x")) is c.DEADLINE_EXCEEDED
    assert grpc_status(e.ChatServiceError("x")) is c.INTERNAL


def test_the_committed_generated_code_matches_proto(tmp_path: Path) -> None:
    """Run `python -m gateways.rpc.codegen` after changing proto/ (this fails until you do)."""
    fresh = generate(out=tmp_path / "gen")
    names = sorted(str(p.relative_to(tmp_path / "gen")) for p in fresh)
    committed = sorted(str(p.relative_to(GEN_DIR)) for p in GEN_DIR.rglob("*") if p.suffix in (".py", ".pyi"))
    committed = [n for n in committed if not n.endswith("__init__.py")]
    assert names == committed
    for name in names:
        assert (tmp_path / "gen" / name).read_text() == (GEN_DIR / name).read_text(), name
