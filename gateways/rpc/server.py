"""The grpc.aio server: both chat services, health, reflection, token auth, graceful stop."""

from __future__ import annotations

import fcntl
import logging
import socket
import struct

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateways.rpc.auth import TokenAuth
from gateways.rpc.decoding import TolerantDecoding
from gateways.rpc.gen import chat_pb2_grpc
from gateways.rpc.gen.chatservice.v1 import chat_service_pb2_grpc
from gateways.rpc.health_status import HealthReporter
from gateways.rpc.legacy import SERVICE_NAME as LEGACY_NAME
from gateways.rpc.legacy import LegacyChatService
from gateways.rpc.v1 import SERVICE_NAME as V1_NAME
from gateways.rpc.v1 import V1ChatService
from gateways.service.chats import ChatService
from gateways.serving.readiness import Readiness
from gateways.settings import Settings
from store.errors import Unavailable

log = logging.getLogger("chatservice.grpc")
HEALTH_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# A connection with no call in flight for this long gets a GOAWAY; clients reconnect on their next.
IDLE_CONNECTION_SECONDS = 120
_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ipv4_addresses() -> list[str]:
    """This machine's IPv4 interface addresses (Linux), or [] where they cannot be read."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                found.append(socket.inet_ntoa(fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)[20:24]))
            except OSError:  # an interface without an IPv4 address
                continue
    return found


def bind_hosts(host: str) -> list[str]:
    """The addresses to bind for HOST: itself, except that gRPC binds 0.0.0.0 as `*`, IPv6 too.

    An IPv4 wildcard is bound as each interface's IPv4 address instead (interfaces that appear
    later, and secondary addresses, are not served: bind an address, or ::, where that matters).
    """
    if host != "0.0.0.0":
        return [host]
    addresses = ipv4_addresses()
    if not addresses:
        log.warning("HOST=0.0.0.0: cannot list IPv4 addresses here, so gRPC listens on IPv6 as well")
        return [host]
    return addresses


class GrpcGateway:
    """One grpc.aio server on the running event loop; `start` returns the bound port."""

    def __init__(self, settings: Settings, service: ChatService, readiness: Readiness) -> None:
        interceptors: list[grpc.aio.ServerInterceptor] = [TolerantDecoding()]
        if settings.auth_token:
            interceptors.append(TokenAuth(settings.auth_token))
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                # Room for MAX_MESSAGE_CHARS of UTF-8 (up to 4 bytes a character) plus the envelope.
                ("grpc.max_receive_message_length", settings.max_message_chars * 4 + 65536),
                # gRPC shares ports by default; a second server on a taken port must fail instead.
                ("grpc.so_reuseport", 0),
                # Against slowloris: connections beyond the cap are closed at once, one that has not
                # finished its HTTP/2 handshake in time is closed, and idle ones are let go.
                ("grpc.max_allowed_incoming_connections", settings.connection_cap),
                ("grpc.server_handshake_timeout_ms", int(settings.read_timeout_seconds * 1000)),
                ("grpc.max_connection_idle_ms", IDLE_CONNECTION_SECONDS * 1000),
            ],
        )
        chat_pb2_grpc.add_ChatServiceServicer_to_server(LegacyChatService(service), self.server)
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server(V1ChatService(service), self.server)
        self.health = HealthReporter(readiness, (LEGACY_NAME, V1_NAME))
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        names = (LEGACY_NAME, V1_NAME, HEALTH_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self.server)
        self._hosts = bind_hosts(settings.host)
        self._port = settings.grpc_port
        self.port = 0

    async def start(self) -> int:
        for host in self._hosts:  # port 0: the first bind picks a free port, the others take it
            where = address(host, self.port or self._port)
            try:
                self.port = self.server.add_insecure_port(where)
            except RuntimeError:
                self.port = 0
            if not self.port:
                raise Unavailable(f"cannot listen for gRPC on {where}: free it or set GRPC_SERVER_PORT")
        await self.health.start()
        await self.server.start()
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new calls, give running ones `grace` seconds to finish, then cancel them."""
        await self.health.stop()
        await self.server.stop(grace)
