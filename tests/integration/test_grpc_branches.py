"""chatservice.v1's branch calls over a real grpc.aio server: regenerate, edit, switch, rename, search."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from tests.grpc_support import MakeServer, Served, make_server, original_proto, turn_events

__all__ = ["make_server", "original_proto"]


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def two_exchanges(served: Served, user: str, first: str = "one") -> str:
    """A chat holding system 1, user 2, answer 3, user 4, answer 5."""
    chat_id = (await turn_events(served, user, first))[0].started.chat_id
    await turn_events(served, user, "two", chat_id)
    return chat_id


async def path(
    served: Served, user: str, chat_id: str, leaf: int = 0
) -> list[tuple[int, list[int], int, int]]:
    listed = await served.v1.ListMessages(pb.ListMessagesRequest(user_id=user, chat_id=chat_id, leaf_id=leaf))
    return [(m.message_id, list(m.sibling_ids), m.sibling_position, m.sibling_count) for m in listed.messages]


async def test_regenerate_edit_switch_rename_and_search(make_server: MakeServer, user: str) -> None:
    served = await make_server()
    word = f"quokka{uuid.uuid4().hex[:6]}"
    chat_id = await two_exchanges(served, user, f"about the {word}")
    ids = {"user_id": user, "chat_id": chat_id}
    events = [e async for e in served.v1.Regenerate(pb.RegenerateRequest(**ids, message_id=5))]
    assert [e.WhichOneof("event") for e in events][:: len(events) - 1] == ["started", "finished"]
    assert (events[0].started.user_message_id, events[-1].finished.assistant_message_id) == (4, 6)
    assert "".join(e.delta.text for e in events[1:-1]) == "Echo: two"
    assert (await path(served, user, chat_id))[3:] == [(4, [4], 1, 1), (6, [5, 6], 2, 2)]
    assert (await path(served, user, chat_id, leaf=5))[4] == (5, [5, 6], 1, 2)

    edit = pb.EditMessageRequest(**ids, message_id=2, content="uno")
    events = [e async for e in served.v1.EditMessage(edit)]
    assert (events[0].started.user_message_id, events[-1].finished.assistant_message_id) == (7, 8)
    assert await path(served, user, chat_id) == [(1, [1], 1, 1), (7, [2, 7], 2, 2), (8, [8], 1, 1)]

    chat = await served.v1.SwitchBranch(pb.SwitchBranchRequest(**ids, message_id=3))
    assert chat.window.message_count == 5
    assert [m for m, *_ in await path(served, user, chat_id)] == [1, 2, 3, 4, 6]
    renamed = await served.v1.RenameChat(pb.RenameChatRequest(**ids, title="Sobre quokkas"))
    assert renamed.title == "Sobre quokkas" and renamed.HasField("window")

    found = await served.v1.SearchChats(pb.SearchChatsRequest(user_id=user, query=word))
    assert [(h.chat.chat_id, h.message_id) for h in found.hits] == [(chat_id, 3)]
    assert found.hits[0].snippet == f"Echo: about the {word}" and not found.next_page_token
    titled = await served.v1.SearchChats(pb.SearchChatsRequest(user_id=user, query="quokkas"))
    assert [(h.chat.chat_id, h.message_id, h.snippet) for h in titled.hits] == [(chat_id, 0, "")]


async def test_bad_branch_calls_get_their_codes_and_change_nothing(
    make_server: MakeServer, user: str
) -> None:
    served = await make_server(MAX_MESSAGE_CHARS="50")
    chat_id = await two_exchanges(served, user)
    ids = {"user_id": user, "chat_id": chat_id}
    theirs = {"user_id": "someone-else", "chat_id": chat_id}

    async def stream(call: Any, request: Any) -> None:
        async for _ in call(request):
            pass

    v1 = served.v1
    cases: list[tuple[Any, grpc.StatusCode]] = [
        (stream(v1.Regenerate, pb.RegenerateRequest(**ids)), grpc.StatusCode.INVALID_ARGUMENT),
        (stream(v1.Regenerate, pb.RegenerateRequest(**ids, message_id=4)), grpc.StatusCode.INVALID_ARGUMENT),
        (stream(v1.Regenerate, pb.RegenerateRequest(**ids, message_id=99)), grpc.StatusCode.NOT_FOUND),
        (stream(v1.Regenerate, pb.RegenerateRequest(**ids, message_id=-1)), grpc.StatusCode.NOT_FOUND),
        (
            stream(v1.Regenerate, pb.RegenerateRequest(**theirs, message_id=5)),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            stream(v1.EditMessage, pb.EditMessageRequest(**ids, message_id=3, content="x")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stream(v1.EditMessage, pb.EditMessageRequest(**ids, message_id=2, content="")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stream(v1.EditMessage, pb.EditMessageRequest(**ids, message_id=2, content="x" * 51)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (v1.SwitchBranch(pb.SwitchBranchRequest(**ids, message_id=99)), grpc.StatusCode.NOT_FOUND),
        (v1.SwitchBranch(pb.SwitchBranchRequest(**ids)), grpc.StatusCode.INVALID_ARGUMENT),
        (v1.SwitchBranch(pb.SwitchBranchRequest(**theirs, message_id=2)), grpc.StatusCode.PERMISSION_DENIED),
        (v1.RenameChat(pb.RenameChatRequest(**ids, title=" ")), grpc.StatusCode.INVALID_ARGUMENT),
        (v1.RenameChat(pb.RenameChatRequest(**ids, title="x" * 201)), grpc.StatusCode.INVALID_ARGUMENT),
        (v1.ListMessages(pb.ListMessagesRequest(**ids, leaf_id=99)), grpc.StatusCode.NOT_FOUND),
        (v1.SearchChats(pb.SearchChatsRequest(user_id=user, query="a")), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for call, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == code, raised.value.details()
    listed = await v1.ListMessages(pb.ListMessagesRequest(**ids, include_erased=True))
    assert [m.message_id for m in listed.messages] == [1, 2, 3, 4, 5]
    assert (await v1.GetChat(pb.GetChatRequest(**ids))).title == "one"
