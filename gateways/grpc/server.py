"""The grpc.aio server: both chat services, health, reflection, token auth, graceful stop."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateways.grpc.auth import TokenAuth
from gateways.grpc.decoding import TolerantDecoding
from gateways.grpc.gen import chat_pb2_grpc
from gateways.grpc.gen.chatservice.v1 import chat_service_pb2_grpc
from gateways.grpc.health import HealthReporter
from gateways.grpc.legacy import SERVICE_NAME as LEGACY_NAME
from gateways.grpc.legacy import LegacyChatService
from gateways.grpc.v1 import SERVICE_NAME as V1_NAME
from gateways.grpc.v1 import V1ChatService
from gateways.health import Readiness
from gateways.service import ChatService
from gateways.settings import Settings
from store.errors import Unavailable

log = logging.getLogger("chatservice.grpc")
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcGateway:
    """One grpc.aio server on the running event loop; `start` returns the bound port."""

    def __init__(self, settings: Settings, service: ChatService, readiness: Readiness) -> None:
        interceptors: list[grpc.aio.ServerInterceptor] = [TolerantDecoding()]
        if settings.auth_token:
            interceptors.append(TokenAuth(settings.auth_token))
        self.server = grpc.aio.server(
            interceptors=interceptors,
            # Room for MAX_MESSAGE_CHARS of UTF-8 (up to 4 bytes a character) plus the envelope.
            options=[
                ("grpc.max_receive_message_length", settings.max_message_chars * 4 + 65536),
                # gRPC shares ports by default; a second server on a taken port must fail instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        chat_pb2_grpc.add_ChatServiceServicer_to_server(LegacyChatService(service), self.server)
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server(V1ChatService(service), self.server)
        self.health = HealthReporter(readiness, (LEGACY_NAME, V1_NAME))
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        names = (LEGACY_NAME, V1_NAME, HEALTH_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.server)
        self._address = address(settings.host, settings.grpc_port)
        self.port = 0

    async def start(self) -> int:
        try:
            self.port = self.server.add_insecure_port(self._address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise Unavailable(f"cannot listen for gRPC on {self._address}: free it or set GRPC_SERVER_PORT")
        await self.health.start()
        await self.server.start()
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new calls, give running ones `grace` seconds to finish, then cancel them."""
        await self.health.stop()
        await self.server.stop(grace)
