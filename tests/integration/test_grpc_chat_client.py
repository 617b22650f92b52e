"""`chatservice chat` as a user runs it (a subprocess, typed input) against a real gRPC server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from tests.conftest import free_port, repo_root
from tests.grpc_support import MakeServer, eventually, make_server, original_proto
from tests.llm_server import FakeLLM, words_reply

__all__ = ["make_server", "original_proto"]


class Terminal:
    """A running `chatservice chat`: type lines, wait for text to appear on its output."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output = ""
        self._seen = 0

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def expect(self, text: str, within: float = 60.0) -> str:
        """Wait until `text` appears after what earlier expects consumed; return the output up to it."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while text not in self.output[self._seen :]:
                chunk = await self.proc.stdout.read(4096)
                if not chunk:
                    raise AssertionError(f"the client exited before {text!r}:\n{self.output}")
                self.output += chunk.decode()
        end = self.output.index(text, self._seen) + len(text)
        before, self._seen = self.output[self._seen : end], end
        return before

    async def finish(self) -> int:
        rest, _ = await asyncio.wait_for(self.proc.communicate(), 60)
        self.output += rest.decode()
        return self.proc.returncode if self.proc.returncode is not None else -1


def default_sigint() -> None:
    """In the child: Ctrl-C as a user's terminal delivers it, even when pytest itself was started
    in the background by a shell without job control (which starts it with SIGINT ignored, and
    an ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
async def terminal() -> AsyncIterator[object]:
    started: list[Terminal] = []

    async def start(*args: str, token: str | None = None) -> Terminal:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AUTH_TOKEN", None)
        if token:
            env["AUTH_TOKEN"] = token
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateways.cli", "chat", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=env, cwd=repo_root(), preexec_fn=default_sigint,
        )  # fmt: skip
        started.append(Terminal(proc))
        return started[-1]

    yield start
    for t in started:
        if t.proc.returncode is None:
            t.proc.kill()
            await t.proc.wait()


async def test_a_conversation_history_and_a_new_chat(make_server: MakeServer, terminal: object) -> None:
    served = await make_server(AUTH_TOKEN="tok")
    user = f"cli-{uuid.uuid4().hex[:8]}"
    term = await terminal("--target", served.target, "--user-id", user, token="tok")  # type: ignore[operator]
    await term.expect("you> ")
    await term.type("Qual é a capital do Brasil?")
    shown = await term.expect("tokens, stop]")
    assert "(new chat " in shown and "assistant> Echo: Qual é a capital do Brasil?" in shown
    await term.expect("you> ")
    await term.type("/history")
    shown = await term.expect("you> ")
    assert "1 system: You are a helpful assistant." in shown
    assert "2 you: Qual é a capital do Brasil?" in shown
    assert "3 assistant: Echo: Qual é a capital do Brasil?" in shown
    await term.type("/new")
    await term.expect("new chat ")
    await term.type("E da Argentina?")
    assert "assistant> Echo: E da Argentina?" in await term.expect("tokens, stop]")
    await term.type("/quit")
    assert await term.finish() == 0
    chats = await served.v1.ListChats(pb.ListChatsRequest(user_id=user), metadata=(("authorization", "tok"),))
    assert [c.title for c in chats.chats] == ["E da Argentina?", "Qual é a capital do Brasil?"]


async def test_ctrl_c_stops_the_answer_and_the_server_stops_the_llm(
    make_server: MakeServer, terminal: object, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    fake_llm.behaviour.reply = words_reply(300)
    fake_llm.behaviour.token_delay = 0.1  # 30 s of answer
    term = await terminal("--target", served.target, "--user-id", "cli-user")  # type: ignore[operator]
    await term.expect("you> ")
    await term.type("tell me a long story")
    await term.expect("assistant> w0 w1 w2")
    term.proc.send_signal(signal.SIGINT)
    await term.expect("[stopped]")
    record = fake_llm.records[-1]

    async def disconnected() -> bool:
        return record.disconnected

    assert await eventually(disconnected) and not record.finished
    await term.expect("you> ")
    # The server stores the partial answer once it has seen the cancel, a moment after the client
    # moved on: ask for the history until it shows (the client's own cancel never waits for it).
    for _ in range(50):
        await term.type("/history")
        if "3 assistant (interrupted): w0 w1 w2" in await term.expect("you> "):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the interrupted answer never showed in /history")
    await term.type("/quit")
    assert await term.finish() == 0


async def test_chat_id_is_created_or_continued_and_an_unreachable_server_is_said(
    make_server: MakeServer, terminal: object, chat_id: str
) -> None:
    served = await make_server()
    term = await terminal("--target", served.target, "--user-id", "cli-user", "--chat-id", chat_id)  # type: ignore[operator]
    await term.expect(f"new chat {chat_id}")
    await term.type("hi")
    await term.expect("assistant> Echo: hi")
    await term.type("/quit")
    assert await term.finish() == 0
    term = await terminal("--target", served.target, "--user-id", "cli-user", "--chat-id", chat_id)  # type: ignore[operator]
    await term.expect(f"continuing chat {chat_id}: hi")
    term.proc.stdin.close()  # type: ignore[union-attr]
    assert await term.finish() == 0
    term = await terminal("--target", served.target, "--user-id", "someone-else", "--chat-id", chat_id)  # type: ignore[operator]
    assert await term.finish() == 1 and "PERMISSION_DENIED" in term.output
    term = await terminal("--target", f"127.0.0.1:{free_port()}")  # type: ignore[operator]
    assert await term.finish() == 1 and "cannot reach" in term.output


@pytest.mark.parametrize("token", [None, "not-the-token"])
async def test_a_missing_or_wrong_token_says_to_set_auth_token_before_the_prompt(
    make_server: MakeServer, terminal: object, token: str | None
) -> None:
    served = await make_server(AUTH_TOKEN="tok")
    term = await terminal("--target", served.target, "--user-id", "cli-user", token=token)  # type: ignore[operator]
    assert await term.finish() == 1
    lines = term.output.strip().splitlines()
    verdict = "needs its token" if token is None else "refused the token"
    assert (
        lines[-1]
        == f"error: the service {verdict}: set AUTH_TOKEN (in this shell, or in ./.env) to the service's AUTH_TOKEN"
    )
    assert "you> " not in term.output and "metadata" not in term.output


async def test_help_says_how_to_leave_and_where_the_token_comes_from() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateways.cli",
        "chat",
        "--help",
        stdout=asyncio.subprocess.PIPE,
        cwd=repo_root(),
    )
    text = " ".join((await proc.communicate())[0].decode().split())
    assert proc.returncode == 0
    assert "Ctrl-C at an idle prompt leaves" in text and "Sends AUTH_TOKEN from the environment" in text
