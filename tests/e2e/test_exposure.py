"""What the served process exposes: listening sockets, phone numbers, the Ray token, descriptors.

Issue 13 items 1, 5 and 14, as an attacker on the network or on the same machine would try them.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc
from gateways.whatsapp import rules as whatsapp
from store import DatabaseURL
from tests.conftest import free_port, free_ports
from tests.e2e.attack_support import (
    ACCOUNT,
    PUBLIC,
    TWILIO_TOKEN,
    actor_names,
    address_of,
    delivery,
    gateway_log_dir,
    listening,
    log_text,
    post_json,
    process_tree,
    request,
    wait_until,
    webhook,
)
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess
from tests.twilio_api import FakeTwilio

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


# -- 1 and 14: a serve that starts its own Ray ---------------------------------------------------


@pytest.fixture(scope="module")
def own_ray(
    tmp_path_factory: pytest.TempPathFactory, llm_server: FakeLLM
) -> Iterator[tuple[ServeProcess, Path]]:
    """`chatservice serve` with no RAY_ADDRESS (it starts Ray), on SQLite, with a HOME of its own."""
    home = tmp_path_factory.mktemp("home")
    with FakeTwilio() as twilio_api:
        env = {
            "HOME": str(home),
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'chats.db'}",
            "OPENAI_API_KEY": "sk-exposure",
            "OPENAI_BASE_URL": llm_server.base_url,
            "AUTO_TITLE": "0",
            "METRICS_EXPORT_PORT": str(free_port()),
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_API_BASE_URL": twilio_api.base_url,
            "PUBLIC_URL": PUBLIC,
            "LOG_LEVEL": "DEBUG",
        }
        # As from a new user's shell: no Ray of the test session's, and no RAY_AUTH_MODE (the session's
        # ray.init sets it in this process; serve with it missing once failed to join its own Ray).
        process = ServeProcess(env, drop=("RAY_ADDRESS", "RAY_AUTH_MODE"))
        with process:
            yield process, home


def test_everything_serve_starts_listens_on_loopback_only(own_ray: tuple[ServeProcess, Path]) -> None:
    """HOST is loopback: the local Ray's GCS, raylet, workers, dashboard, agents and metrics too."""
    serve, _ = own_ray
    assert serve.proc is not None
    sockets = listening(process_tree(serve.proc.pid))
    processes = " ".join(process for _, process in sockets)
    ports = {local.rsplit(":", 1)[1] for local, _ in sockets}
    assert {str(serve.web_port), str(serve.grpc_port)} <= ports, sockets  # our own sockets, and Ray's:
    for expected in ("gcs_server", "raylet", "DashboardA"):
        assert expected in processes, sockets
    assert [s for s in sockets if address_of(s[0]) not in LOOPBACK] == []
    metrics = next(line for line in serve.output().splitlines() if "Ray metrics (Prometheus): " in line)
    assert "http://127.0.0.1:" in metrics


def test_the_ray_token_file_is_its_owners_only(own_ray: tuple[ServeProcess, Path]) -> None:
    _, home = own_ray
    token = home / ".ray" / "auth_token"
    assert token.is_file() and len(token.read_text().strip()) == 64
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) & 0o077 == 0


def test_no_phone_number_in_actor_names_metrics_or_logs(
    own_ray: tuple[ServeProcess, Path], llm_server: FakeLLM
) -> None:
    serve, home = own_ray
    digits = f"55119{random.randrange(10**7, 10**8)}"
    sender = f"whatsapp:+{digits}"
    status, inline = webhook(serve, delivery(sender, "Qual é a capital do Brasil?"))
    assert status == 200 and inline in (["Echo: Qual é a capital do Brasil?"], [])
    chat_id = whatsapp.chat_id_for(sender, 1, whatsapp.id_key(None, TWILIO_TOKEN))
    assert wait_until(lambda: len(messages(serve, sender, chat_id)) == 3, 60)

    names = actor_names(serve, home)
    assert f"chat:{chat_id}" in names and not [n for n in names if digits in n]
    url = next(line for line in serve.output().splitlines() if "Ray metrics (Prometheus): " in line).split()[
        -1
    ]
    # Our metrics and Ray's own reach the endpoint within seconds; then nothing in them names the number.
    assert wait_until(lambda: "ray_chatservice_turns_total" in scrape(url), 60, every=2)
    assert digits not in scrape(url)
    logs = [d for d in (gateway_log_dir(serve),) if d]
    assert logs and digits not in log_text(serve, logs)


def test_a_forged_page_token_past_64_bits_is_400_on_sqlite(own_ray: tuple[ServeProcess, Path]) -> None:
    """SQLite raised OverflowError for it: a 500, and INTERNAL over gRPC."""
    serve, _ = own_ray
    someone = f"u-{uuid.uuid4().hex[:8]}"
    chat_id = post_json(serve, f"/v1/users/{someone}/chats", "{}").json()["chat_id"]
    token = base64.urlsafe_b64encode(json.dumps({"s": 2**63}).encode()).decode()
    listed = request(serve, "GET", f"/v1/users/{someone}/chats/{chat_id}/messages?page_token={token}")
    assert listed.status == 400
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.ChatServiceStub(channel).ListMessages(
                pb.ListMessagesRequest(user_id=someone, chat_id=chat_id, page_token=token), timeout=60
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in serve.output()


def messages(serve: ServeProcess, user: str, chat_id: str) -> list[object]:
    reply = request(serve, "GET", f"/v1/users/{user.replace('+', '%2B')}/chats/{chat_id}/messages")
    return list(reply.json()["messages"]) if reply.status == 200 else []


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return str(r.read().decode())


# -- 5. accept errors when the process runs out of file descriptors -------------------------------


@pytest.fixture(scope="module")
def exposed(ray_session: str, mysql_url: DatabaseURL, llm_server: FakeLLM) -> Iterator[ServeProcess]:
    """HOST=0.0.0.0 (so a token), a low open-file limit and a cap above it: a misconfiguration."""
    env = {
        "HOST": "0.0.0.0",
        "AUTH_TOKEN": "tok",
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-fds",
        "OPENAI_BASE_URL": llm_server.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "RAY_NAMESPACE": f"fds-{uuid.uuid4().hex[:8]}",
        "MAX_CONNECTIONS": "5000",
        "READ_TIMEOUT_SECONDS": "5",
    }
    with ServeProcess(env, open_files=512) as process:
        yield process


def test_grpc_binds_exactly_an_ipv4_host(exposed: ServeProcess) -> None:
    """HOST=0.0.0.0 bound gRPC to `*`, IPv6 included; each IPv4 address now, as HTTP does."""
    assert exposed.proc is not None
    mine = [
        s
        for s in listening([exposed.proc.pid])
        if s[0].endswith((f":{exposed.grpc_port}", f":{exposed.web_port}"))
    ]
    assert {s[0] for s in mine if s[0].endswith(f":{exposed.web_port}")} == {f"0.0.0.0:{exposed.web_port}"}
    grpc_hosts = {address_of(s[0]) for s in mine if s[0].endswith(f":{exposed.grpc_port}")}
    assert "127.0.0.1" in {h.removeprefix("::ffff:") for h in grpc_hosts}
    assert all(h.removeprefix("::ffff:").count(".") == 3 for h in grpc_hosts), grpc_hosts  # no * and no IPv6


def connect_without_waiting(flood: list[socket.socket], port: int, count: int, keep: int = 1500) -> None:
    """Opens `count` connections without waiting for them; closes the oldest beyond `keep`."""
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        flood.append(s)
    while len(flood) > keep:
        flood.pop(0).close()


def test_running_out_of_file_descriptors_is_logged_once_in_a_while(exposed: ServeProcess) -> None:
    """asyncio logs every failed accept with a traceback: it was 83 MB of log in 12 s."""
    flood: list[socket.socket] = []
    try:
        # Past the backlog of 128 the kernel drops SYNs and the client retries them later, and idle
        # connections are closed after READ_TIMEOUT_SECONDS: keep connecting until the process runs out.
        deadline = time.monotonic() + 60
        while "cannot accept connections" not in exposed.output() and time.monotonic() < deadline:
            connect_without_waiting(flood, exposed.web_port, 150)
            time.sleep(0.5)
        connect_without_waiting(flood, exposed.web_port, 300)
        time.sleep(3)  # still out of descriptors, and trying to accept again
        log = exposed.output()
        assert "cannot accept connections" in log
        assert log.count("cannot accept connections") <= 3 and len(log) < 30_000, log[-3000:]
        assert "Traceback" not in log
    finally:
        for s in flood:
            s.close()
    assert wait_until(lambda: request(exposed, "GET", "/healthz").status == 200, 60)


# -- 14. an SQLite file that cannot be opened -----------------------------------------------------


def unwritable_places(tmp_path: Path) -> list[Path]:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    places = [a_file / "chats.db"]  # its directory cannot exist: even root cannot make it
    if os.geteuid() != 0:  # root writes into read-only directories anyway
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        places.append(read_only / "chats.db")
    return places


def test_an_sqlite_file_that_cannot_be_opened_is_one_line_at_start_up(tmp_path: Path) -> None:
    for place in unwritable_places(tmp_path):
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{place}",
            "RAY_USAGE_STATS_ENABLED": "0",
            **free_ports(),
        }
        env.pop("RAY_ADDRESS", None)
        out = subprocess.run(
            [sys.executable, "-m", "gateways.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout, out.stderr
        errors = [line for line in out.stderr.splitlines() if line.startswith("chatservice: ")]
        assert len(errors) == 1 and errors[0].startswith(f"chatservice: database sqlite:///{place}: "), errors
