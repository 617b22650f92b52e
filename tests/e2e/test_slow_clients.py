"""Slow and malformed clients against `chatservice serve` (issue 13, item 5): slowloris on HTTP and
gRPC, a trickled body, and requests that only fill the log.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from store import DatabaseURL
from tests.e2e.attack_support import Trickler, post_json, request, wait_until
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]


# -- slowloris --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM) -> Iterator[ServeProcess]:
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-slow",
        "OPENAI_BASE_URL": llm_server.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "RAY_NAMESPACE": f"slow-{uuid.uuid4().hex[:8]}",
        "MAX_CONNECTIONS": "40",
        "READ_TIMEOUT_SECONDS": "3",
    }
    with ServeProcess(env) as process:
        yield process


def trickling(
    port: int, count: int, start: bytes, stop: threading.Event, head_at_once: bool = False
) -> tuple[list[Trickler], threading.Thread]:
    clients = [Trickler(port, start, head_at_once) for _ in range(count)]

    def run() -> None:
        while not stop.is_set():
            for c in clients:
                c.trickle()
            time.sleep(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return clients, thread


def test_trickling_clients_beyond_the_cap_do_not_keep_a_request_out(capped: ServeProcess) -> None:
    """100 clients sending request heads a byte every half second and 10 sending bodies so,
    reconnecting whenever closed, against a cap of 40: legitimate requests still get answers."""
    stop = threading.Event()
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    body = b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n{"
    heads, head_thread = trickling(capped.web_port, 100, head, stop)
    bodies, body_thread = trickling(capped.web_port, 10, body, stop, head_at_once=True)
    try:
        for _ in range(8):
            answer = post_json(
                capped, "/chat", json.dumps({"user_id": "legit", "user_message": "ainda atende?"})
            )
            assert answer.status == 200 and answer.json()["content"] == "Echo: ainda atende?"
            time.sleep(0.5)
        # Tricklers are closed: to make room for a newcomer, or out of time for their head or body.
        assert wait_until(lambda: all(c.closed_by_server for c in heads + bodies), 30)
    finally:
        stop.set()
        head_thread.join()
        body_thread.join()
        for c in heads + bodies:
            c.close()
    assert request(capped, "GET", "/healthz").status == 200
    log = capped.output()
    assert "Traceback" not in log and len(log) < 20_000, log[-2000:]


def test_a_trickled_body_gets_408(capped: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", capped.web_port), timeout=30) as s:
        s.sendall(
            b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
        )
        answer = s.recv(65536)
    assert (
        answer.startswith(b"HTTP/1.1 408")
        and b'"request_timeout"' in answer
        and b"Connection: close" in answer
    )


def test_grpc_drops_connections_that_never_finish_their_handshake(capped: ServeProcess) -> None:
    """60 silent TCP connections against a gRPC cap of 40: a real client still gets its answer."""
    silent = [socket.create_connection(("127.0.0.1", capped.grpc_port)) for _ in range(60)]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{capped.grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=60, wait_for_ready=True).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        for s in silent:  # the server's SETTINGS, maybe a GOAWAY, then the close within its timeout
            s.settimeout(30)
            while s.recv(1024):
                pass
    finally:
        for s in silent:
            s.close()


def test_malformed_requests_are_400_and_fill_no_log(capped: ServeProcess) -> None:
    """aiohttp logged each with a traceback at ERROR: a cheap way to fill the disk."""
    before = capped.output()
    for raw in (
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # request line too long
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"v" * 10_000 + b"\r\n\r\n",
    ) * 5:
        with socket.create_connection(("127.0.0.1", capped.web_port), timeout=30) as s:
            s.sendall(raw)
            assert s.recv(100).split(b" ", 2)[1] == b"400"  # HTTP/1.0 or 1.1, as aiohttp answers
    new = capped.output()[len(before) :]
    assert "Traceback" not in new and "ERROR" not in new and "aiohttp" not in new  # (a DEBUG line each)
