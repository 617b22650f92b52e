"""Health (grpc.health.v1), reflection and graceful stop, queried with the standard clients."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from gateways.rpc.gen.chatservice.v1 import chat_service_pb2 as pb
from gateways.rpc.server import GrpcGateway
from store import DatabaseURL
from store.errors import Unavailable
from store.records import MessageStatus
from tests.conftest import free_port
from tests.grpc_support import MakeServer, eventually, make_server, original_proto, stored
from tests.llm_server import FakeLLM, words_reply

__all__ = ["make_server", "original_proto"]

SERVICES = ("", "pb.ChatService", "chatservice.v1.ChatService")
Status = health_pb2.HealthCheckResponse


async def health_of(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)).status  # type: ignore[no-any-return]


async def test_health_serves_once_ray_and_the_store_answer(make_server: MakeServer) -> None:
    served = await make_server(AUTH_TOKEN="tok")  # health needs no token, as probes send none
    for service in SERVICES:

        async def serving(service: str = service) -> bool:
            return await health_of(served.channel, service) == Status.SERVING

        assert await eventually(serving)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health_of(served.channel, "no.such.Service")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_health_is_not_serving_while_the_store_is_unreachable(make_server: MakeServer) -> None:
    served = await make_server(DATABASE_URL=f"mysql://u:p@127.0.0.1:{free_port()}/nowhere")
    await asyncio.sleep(3)  # at least one readiness check has run by now
    for service in SERVICES:
        assert await health_of(served.channel, service) == Status.NOT_SERVING


async def read_to_end(call: grpc.aio.UnaryStreamCall) -> None:
    while await call.read() is not grpc.aio.EOF:
        pass


def reflect_and_call(target: str, user: str) -> tuple[list[str], list[str]]:
    """What a generic client does: learn the services and the schema by reflection, then call."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindServiceByName("pb.ChatService").methods_by_name["ChatStream"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_stream(
            "/pb.ChatService/ChatStream",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        contents = [r.content for r in call(request_class(user_id=user, user_message="via reflection"))]
    return services, contents


async def test_reflection_lists_the_services_and_is_enough_to_call_them(make_server: MakeServer) -> None:
    served = await make_server()
    services, contents = await asyncio.to_thread(reflect_and_call, served.target, "reflector")
    assert services == [
        "chatservice.v1.ChatService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "pb.ChatService",
    ]
    assert contents[-1] == "Echo: via reflection"


async def test_graceful_stop_lets_a_running_stream_finish_and_refuses_new_calls(
    make_server: MakeServer, fake_llm: FakeLLM
) -> None:
    served = await make_server()
    fake_llm.behaviour.reply = words_reply(20)
    fake_llm.behaviour.token_delay = 0.1  # about 2 s of answer
    user = f"user-{uuid.uuid4().hex[:8]}"
    call = served.v1.SendMessage(pb.SendMessageRequest(user_id=user, content="go"))
    first = await call.read()
    assert first.WhichOneof("event") == "started"
    stopping = asyncio.create_task(served.gateway.stop(30))
    events = [first]
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    assert events[-1].WhichOneof("event") == "finished"
    assert "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta").split() == [
        f"w{i}" for i in range(20)
    ]
    await stopping
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await served.v1.ListChats(pb.ListChatsRequest(user_id=user), timeout=5)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_stream_still_running_after_the_grace_period_is_stopped_and_kept(
    make_server: MakeServer, fake_llm: FakeLLM, db_url: DatabaseURL
) -> None:
    served = await make_server()
    fake_llm.behaviour.reply = words_reply(200)
    fake_llm.behaviour.token_delay = 0.2  # 40 s of answer, far past the grace period
    user = f"user-{uuid.uuid4().hex[:8]}"
    call = served.v1.SendMessage(pb.SendMessageRequest(user_id=user, content="go"))
    chat_id = (await call.read()).started.chat_id
    await call.read()
    await served.gateway.stop(0.5)
    with pytest.raises(grpc.aio.AioRpcError):
        await read_to_end(call)
    record = fake_llm.records[-1]

    async def disconnected() -> bool:
        return record.disconnected

    async def interrupted() -> bool:
        messages = await stored(db_url, chat_id)
        return len(messages) == 3 and messages[2].status is MessageStatus.INTERRUPTED

    assert await eventually(disconnected) and await eventually(interrupted)


async def test_a_taken_port_is_an_error_that_names_the_setting(make_server: MakeServer) -> None:
    served = await make_server()
    taken = served.target.rsplit(":", 1)[1]
    settings = replace(served.runtime.settings, grpc_port=int(taken))
    second = GrpcGateway(settings, served.runtime.service, served.runtime.readiness)
    with pytest.raises(Unavailable, match="GRPC_SERVER_PORT"):
        await second.start()
