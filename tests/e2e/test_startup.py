"""`chatservice serve` start-up: a taken port fails first, in one line, before anything starts."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.serve_process import ServeProcess, run_cli

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize(("key", "what"), [("WEB_SERVER_PORT", "HTTP"), ("GRPC_SERVER_PORT", "gRPC")])
async def test_a_port_in_use_is_one_line_naming_it_before_anything_starts(
    key: str, what: str, taken_port: int, tmp_path: Path
) -> None:
    ports = {"WEB_SERVER_PORT": str(free_port()), "GRPC_SERVER_PORT": str(free_port()), key: str(taken_port)}
    env = {**os.environ, **ports, "RAY_USAGE_STATS_ENABLED": "0"}
    code, out, err = await run_cli("serve", cwd=tmp_path, env=env)
    assert code == 1, err
    assert err.splitlines() == [
        f"chatservice: cannot listen for {what} on 127.0.0.1:{taken_port}: address already in use; "
        f"another process listens there: stop it, or set {key} to a free port"
    ]
    assert out == ""
    assert not (tmp_path / "chatservice.db").exists()  # not even the database was touched


async def test_a_host_that_does_not_resolve_is_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOST": "chatservice-host.invalid",
        "AUTH_TOKEN": "t",
        "WEB_SERVER_PORT": str(free_port()),
    }
    code, _, err = await run_cli("serve", cwd=tmp_path, env=env)
    assert code == 1
    assert err.startswith("chatservice: cannot listen for HTTP on chatservice-host.invalid:")
    assert "HOST=chatservice-host.invalid does not resolve" in err and len(err.splitlines()) == 1


@pytest.mark.ray
def test_without_the_dashboard_the_local_ray_still_serves_and_exports_metrics(tmp_path: Path) -> None:
    with ServeProcess({"RAY_DASHBOARD": "0"}, cwd=tmp_path) as serve:
        request = urllib.request.Request(
            f"{serve.url}/chat",
            json.dumps({"user_id": "u1", "user_message": "Olá"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["content"].startswith("[offline]")
    assert serve.proc is not None and serve.proc.returncode == 0, serve.output()
    assert "Ray dashboard:" not in serve.output() and "Ray metrics (Prometheus): http://" in serve.output()
