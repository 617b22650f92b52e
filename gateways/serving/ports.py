"""The HTTP and gRPC ports, claimed before anything starts: a taken one fails at once, in one line."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from gateways.settings import Settings
from store.errors import Unavailable

_ADVICE = {
    errno.EADDRINUSE: "another process listens there: stop it, or set {key} to a free port",
    errno.EACCES: "ports below 1024 need privileges: set {key} to a higher port",
    errno.EADDRNOTAVAIL: "HOST is not an address of this machine: set HOST",
}


@dataclass(slots=True)
class Ports:
    """HTTP sockets bound but not listening (connections are refused until the app serves them),
    and a bound placeholder on the gRPC port until the gRPC server binds it."""

    http: list[socket.socket]
    grpc_placeholder: socket.socket | None = None

    def release_grpc(self) -> None:
        if self.grpc_placeholder is not None:
            self.grpc_placeholder.close()
            self.grpc_placeholder = None

    def close(self) -> None:
        self.release_grpc()
        for sock in self.http:
            sock.close()


def claim(settings: Settings) -> Ports:
    """Bind the HTTP port (every address HOST resolves to) and hold the gRPC port; Unavailable if taken."""
    http = _bind(settings.host, settings.web_port, "HTTP", "WEB_SERVER_PORT")
    if settings.grpc_port == 0:  # any free port: gRPC picks one when it binds
        return Ports(http)
    try:
        placeholder = _bind(settings.host, settings.grpc_port, "gRPC", "GRPC_SERVER_PORT")[0]
    except Unavailable:
        for sock in http:
            sock.close()
        raise
    return Ports(http, placeholder)


def _bind(host: str, port: int, what: str, key: str) -> list[socket.socket]:
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        reason = f"HOST={host} does not resolve ({exc.strerror})"
        raise Unavailable(f"cannot listen for {what} on {shown}: {reason}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            # As asyncio's create_server does: reuse a port in TIME_WAIT, and one socket per family.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]  # the same port on every address, also when 0 was asked
    except OSError as exc:
        for sock in bound:
            sock.close()
        advice = _ADVICE.get(exc.errno or 0, "set {key} or HOST").format(key=key)
        reason = (exc.strerror or str(exc)).lower()
        raise Unavailable(f"cannot listen for {what} on {shown}: {reason}; {advice}") from None
    return bound
