"""`chatservice serve` end to end over gRPC: the original proto's stubs, health, reflection, the terminal client."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from store import DatabaseURL
from tests.conftest import repo_root
from tests.grpc_support import original_proto
from tests.llm_server import FakeLLM, words_reply
from tests.serve_process import ServeProcess

__all__ = ["original_proto"]
pytestmark = [pytest.mark.e2e, pytest.mark.ray]
AUTH = (("authorization", "tok"),)


def wait_serving(channel: grpc.Channel, within: float = 60.0) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + within
    status = None
    while time.monotonic() < deadline:
        status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.2)
    raise AssertionError(f"health stayed {status}")


def test_serve_over_grpc(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, original_proto: tuple[ModuleType, ModuleType]
) -> None:
    chat_pb2, chat_pb2_grpc = original_proto
    env = {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
        "RAY_ADDRESS": ray_session,
        "AUTH_TOKEN": "tok",
        "GRPC_GRACE_SECONDS": "30",
    }
    with ServeProcess(env) as serve:
        target = f"127.0.0.1:{serve.grpc_port}"
        with grpc.insecure_channel(target) as channel:
            wait_serving(channel)
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            first = list(
                stub.ChatStream(chat_pb2.ChatRequest(user_id="e2e", user_message="Olá!"), metadata=AUTH)
            )
            chat_id = first[-1].chat_id
            second = list(
                stub.ChatStream(
                    chat_pb2.ChatRequest(chat_id=chat_id, user_id="e2e", user_message="Tudo bem?"),
                    metadata=AUTH,
                )
            )
            for responses, answer in ((first, "Echo: Olá!"), (second, "Echo: Tudo bem?")):
                contents = [r.content for r in responses]
                assert contents[-1] == answer and len(contents) > 1
                assert all(b.startswith(a) for a, b in itertools.pairwise(contents))
                assert {(r.chat_id, r.user_id) for r in responses} == {(chat_id, "e2e")}
            with pytest.raises(grpc.RpcError) as info:
                list(stub.ChatStream(chat_pb2.ChatRequest(user_id="e2e", user_message="no token")))
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
            assert {"pb.ChatService", "chatservice.v1.ChatService", "grpc.health.v1.Health"} <= set(services)

        client = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateways.cli",
                "chat",
                "--target",
                target,
                "--user-id",
                "e2e",
                "--chat-id",
                chat_id,
            ],
            input="/history\nE agora?\n/quit\n",
            capture_output=True,
            text=True,
            timeout=120,
            cwd=repo_root(),
            env={**os.environ, "AUTH_TOKEN": "tok"},
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert f"continuing chat {chat_id}: Olá!" in client.stdout
        assert (
            "4 assistant: Echo: Olá!" not in client.stdout and "5 assistant: Echo: Tudo bem?" in client.stdout
        )
        assert "assistant> Echo: E agora?" in client.stdout

        # SIGTERM while a stream runs: it is allowed to finish, then the process exits cleanly.
        fake_llm.behaviour.reply = words_reply(20)
        fake_llm.behaviour.token_delay = 0.1
        with grpc.insecure_channel(target) as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            call = stub.ChatStream(chat_pb2.ChatRequest(user_id="e2e", user_message="long"), metadata=AUTH)
            first_response = next(call)
            assert first_response.content == "w0 "
            threading.Thread(target=serve.stop, daemon=True).start()
            last = list(call)[-1]
            assert last.content == " ".join(f"w{i}" for i in range(20))
        assert serve.proc is not None and serve.proc.wait(60) == 0, serve.output()
    assert "gRPC listening on 127.0.0.1:" in serve.output()
