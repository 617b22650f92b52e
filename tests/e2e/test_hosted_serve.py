"""`chatservice serve` with CONVERSATION_PLACEMENT=hosted on a Ray of its own: chats in hosts, a clean stop."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.attack_support import actor_names, gcs_address, post_json, process_tree
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]


def test_hosted_chats_live_in_three_hosts_and_serve_stops_cleanly(
    tmp_path: Path, llm_server: FakeLLM
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "HOME": str(home),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chats.db'}",
        "OPENAI_API_KEY": "sk-hosted",
        "OPENAI_BASE_URL": llm_server.base_url,
        "AUTO_TITLE": "0",
        "RAY_DASHBOARD": "0",
        "CONVERSATION_PLACEMENT": "hosted",
        "HOSTS_PER_NODE": "3",
    }
    serve = ServeProcess(env, drop=("RAY_ADDRESS", "RAY_AUTH_MODE")).start(timeout=120)
    try:
        user = f"hosted-{random.randrange(10**9)}"
        chats = []
        for n in range(1):
            reply = post_json(serve, "/chat", json.dumps({"user_id": user, "user_message": f"olá {n}"}))
            assert reply.status == 200, reply.body
            chats.append(json.loads(reply.body)["chat_id"])
        again = post_json(
            serve, "/chat", json.dumps({"chat_id": chats[0], "user_id": user, "user_message": "e?"})
        )
        assert json.loads(again.body)["content"] == "Echo: e?"
        names = actor_names(serve, home)
        assert sorted(n for n in names if n.startswith("host:")) == ["host:0", "host:1", "host:2"]
        assert not [n for n in names if n.startswith("chat:")]  # no actor per chat in this placement
        assert serve.proc is not None
        workers = len(process_tree(serve.proc.pid))
        for n in range(1, 2):  # another chat starts no process
            post_json(serve, "/chat", json.dumps({"user_id": user, "user_message": f"olá {n}"}))
        assert len(process_tree(serve.proc.pid)) <= workers
        # An operator asks which host serves the first chat, from another process, as the README says.
        env = {**os.environ, "HOME": str(home), "RAY_ADDRESS": gcs_address(serve), "RAY_AUTH_MODE": "token"}
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # the command joins a loopback Ray by itself
        asked = subprocess.run(
            [sys.executable, "-m", "gateways.cli", "hosts", "--chat", chats[0]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert asked.returncode == 0, asked.stderr
        lines = asked.stdout.splitlines()
        assert [line.split()[0] for line in lines[:3]] == ["host:0", "host:1", "host:2"]
        assert sum(int(line.split()[-1]) for line in lines[:3]) == 2  # live chats, over the hosts
        assert lines[3].startswith(f"chat {chats[0]}: host:") and lines[3].endswith("(live)")
    finally:
        code = serve.stop()
    out = serve.output()
    assert code == 0, out
    # Two chats, three hosts: at least one host had none to drop when it stopped.
    assert "passivated 2 conversation(s)" in out, out
    assert "Traceback" not in out, out
