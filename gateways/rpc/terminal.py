"""`chatservice chat`: an interactive terminal chat over chatservice.v1, answers streamed live."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import grpc

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc as pb_grpc

HELP = (
    "/new starts a new chat, /history shows this one, /quit leaves; "
    "Ctrl-C stops an answer, and at an empty prompt leaves."
)
CONNECT_SECONDS = 10.0
ROLES = {pb.ROLE_SYSTEM: "system", pb.ROLE_USER: "you", pb.ROLE_ASSISTANT: "assistant"}
# This client's token comes from its own environment (or ./.env), whatever the server says to send.
SET_TOKEN = "set AUTH_TOKEN (in this shell, or in ./.env) to the service's AUTH_TOKEN"
NO_TOKEN = f"error: the service needs its token: {SET_TOKEN}"
WRONG_TOKEN = f"error: the service refused the token: {SET_TOKEN}"


def failure(exc: grpc.RpcError, token: str | None = None) -> str:
    if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
        return WRONG_TOKEN if token else NO_TOKEN
    return f"error: {exc.code().name}: {exc.details()}"


class TerminalChat:
    """One user's session: the current chat id, and how to talk to the server about it."""

    def __init__(self, stub: pb_grpc.ChatServiceStub, user_id: str, token: str | None, out: TextIO) -> None:
        self._stub = stub
        self._user = user_id
        self._token = token
        self._metadata = (("authorization", token),) if token else ()
        self._out = out
        self.chat_id = ""

    def check_access(self) -> None:
        """One cheap call, so a missing or wrong token is said before the first prompt."""
        self._stub.ListChats(pb.ListChatsRequest(user_id=self._user, page_size=1), metadata=self._metadata)

    def failure(self, exc: grpc.RpcError) -> str:
        return failure(exc, self._token)

    def _say(self, text: str = "", end: str = "\n") -> None:
        self._out.write(text + end)
        self._out.flush()

    def open(self, chat_id: str) -> None:
        """Continue chat_id, creating it with that id if it does not exist yet."""
        try:
            chat = self._stub.GetChat(
                pb.GetChatRequest(user_id=self._user, chat_id=chat_id), metadata=self._metadata
            )
            self._say(f"continuing chat {chat.chat_id}: {chat.title or '(no messages yet)'}")
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            request = pb.CreateChatRequest(user_id=self._user, chat_id=chat_id)
            chat = self._stub.CreateChat(request, metadata=self._metadata)
            self._say(f"new chat {chat.chat_id}")
        self.chat_id = chat.chat_id

    def new(self) -> None:
        chat = self._stub.CreateChat(pb.CreateChatRequest(user_id=self._user), metadata=self._metadata)
        self.chat_id = chat.chat_id
        self._say(f"new chat {chat.chat_id}")

    def send(self, text: str) -> None:
        """Stream one answer; Ctrl-C cancels the call, and the server stops the LLM with it."""
        request = pb.SendMessageRequest(user_id=self._user, chat_id=self.chat_id, content=text)
        call = self._stub.SendMessage(request, metadata=self._metadata)
        try:
            for event in call:
                self._show(event)
        except KeyboardInterrupt:
            call.cancel()
            self._say(" [stopped]")

    def _show(self, event: pb.TurnEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "started":
            if event.started.chat_created:
                self._say(f"(new chat {event.started.chat_id})")
            self.chat_id = event.started.chat_id
            self._say("assistant> ", end="")
        elif kind == "delta":
            self._say(event.delta.text, end="")
        elif kind == "finished":
            f = event.finished
            reason = pb.FinishReason.Name(f.finish_reason).removeprefix("FINISH_REASON_").lower()
            evicted = f", {f.evicted_messages} evicted" if f.evicted_messages else ""
            self._say(f"\n  [{f.usage.prompt_tokens}+{f.usage.completion_tokens} tokens, {reason}{evicted}]")

    def history(self) -> None:
        if not self.chat_id:
            self._say("no chat yet: send a message first")
            return
        token = ""
        while True:
            request = pb.ListMessagesRequest(
                user_id=self._user, chat_id=self.chat_id, include_erased=True, page_token=token
            )
            page = self._stub.ListMessages(request, metadata=self._metadata)
            for m in page.messages:
                flags = [
                    n
                    for n, on in (
                        ("interrupted", m.status == pb.MESSAGE_STATUS_INTERRUPTED),
                        ("out of window", m.erased),
                    )
                    if on
                ]
                note = f" ({', '.join(flags)})" if flags else ""
                self._say(f"  {m.message_id:>3} {ROLES.get(m.role, '?')}{note}: {m.content}")
            token = page.next_page_token
            if not token:
                return

    def run(self, read: Callable[[str], str]) -> int:
        """The prompt loop; returns at /quit, end of input or Ctrl-C at the prompt."""
        while True:
            try:
                line = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                self._say()
                return 0
            if not line:
                continue
            if line == "/quit":
                return 0
            try:
                if line == "/new":
                    self.new()
                elif line == "/history":
                    self.history()
                elif line.startswith("/"):
                    self._say(HELP)
                else:
                    self.send(line)
            except grpc.RpcError as exc:
                self._say(self.failure(exc))


def main(target: str, user_id: str, chat_id: str | None, token: str | None, out: TextIO) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=CONNECT_SECONDS)
        except grpc.FutureTimeoutError:
            out.write(f"cannot reach {target}: is `chatservice serve` running there?\n")
            return 1
        chat = TerminalChat(pb_grpc.ChatServiceStub(channel), user_id, token, out)
        out.write(f"chatservice chat: {user_id} at {target}. {HELP}\n")
        try:
            chat.check_access()
            if chat_id:
                chat.open(chat_id)
        except grpc.RpcError as exc:
            out.write(chat.failure(exc) + "\n")
            return 1
        except KeyboardInterrupt:  # Ctrl-C before the chat opened: leave quietly, as a shell does
            out.write("\n")
            return 130
        return chat.run(input if sys.stdin.isatty() else echoing(out))


def echoing(out: TextIO) -> Callable[[str], str]:
    """Piped input is not echoed by a terminal: show each line after its prompt, as typed."""

    def read(prompt: str) -> str:
        line = input(prompt)
        out.write(line + "\n")
        return line

    return read
