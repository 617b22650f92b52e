"""For the attack tests (test_attacks.py): raw HTTP and gRPC calls, signed webhooks, logs, sockets."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import grpc
from twilio.request_validator import RequestValidator

from tests.serve_process import ServeProcess

TWILIO_TOKEN = "attack-twilio-token"
ACCOUNT = "AC" + "a1" * 16
PUBLIC = "https://chat.example.com"
OUR_NUMBER = "whatsapp:+14155238886"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def code(self) -> str:
        return str(self.json()["error"]["code"])


def request(
    serve: ServeProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def post_json(serve: ServeProcess, path: str, raw: str | bytes, **headers: str) -> Reply:
    """A JSON body as given (so it can hold `\\ud800` escapes or nest 1,000 deep)."""
    body = raw.encode() if isinstance(raw, str) else raw
    return request(serve, "POST", path, body, {"Content-Type": "application/json", **headers})


def delivery(sender: str, body: str, **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming WhatsApp message."""
    sid = "SM" + uuid.uuid4().hex
    form = {"SmsMessageSid": sid, "MessageSid": sid, "AccountSid": ACCOUNT, "From": sender}
    return form | {"To": OUR_NUMBER, "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"} | extra


def signature(form: dict[str, str]) -> str:
    return str(RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + "/twilio/whatsapp", form))


def webhook(serve: ServeProcess, form: dict[str, str], signed: str | None = None) -> tuple[int, list[str]]:
    """Post a delivery (signed for it unless a captured signature is given): status, TwiML messages."""
    reply = request(
        serve,
        "POST",
        "/twilio/whatsapp",
        urlencode(form).encode(),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signed or signature(form),
        },
    )
    if reply.status != 200:
        return reply.status, []
    return 200, [m.text or "" for m in ET.fromstring(reply.body).findall("Message")]


def raw_grpc(serve: ServeProcess, method: str, payload: bytes, stream: bool) -> grpc.StatusCode:
    """Call `method` with hand-made request bytes; the status code it ends with."""
    with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
        call = (channel.unary_stream if stream else channel.unary_unary)(
            method, request_serializer=None, response_deserializer=None
        )
        try:
            result = call(payload, timeout=60)
            if stream:
                list(result)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def field(number: int, value: bytes) -> bytes:
    """One length-delimited protobuf field (strings, bytes, messages) with a short value."""
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def log_text(serve: ServeProcess, log_dirs: Iterable[Path]) -> str:
    """Everything the served process and Ray wrote: its output, its gateway log, workers' logs."""
    parts = [serve.output()]
    for directory in log_dirs:
        parts += [p.read_text(errors="replace") for p in sorted(directory.glob("*")) if p.is_file()]
    return "\n".join(parts)


def gateway_log_dir(serve: ServeProcess) -> Path | None:
    """Ray's log directory, from the line where serve names its log file there."""
    for line in serve.output().splitlines():
        if "gateway log: " in line:
            return Path(line.split("gateway log: ", 1)[1].split(" (", 1)[0]).parent
    return None


def process_tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(current)], capture_output=True, text=True)
        todo += [int(p) for p in out.stdout.split()]
    return found


def listening(pids: list[int]) -> list[tuple[str, str]]:
    """(local address, process) of every TCP socket these processes listen on."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    wanted = {f"pid={p}," for p in pids}
    rows = []
    for line in out.splitlines():
        cells = line.split()
        if any(w in line for w in wanted):
            rows.append((cells[3], cells[-1]))
    return rows


def address_of(local: str) -> str:
    """'127.0.0.1:80' -> '127.0.0.1'; '[::ffff:127.0.0.1]:80' -> '::ffff:127.0.0.1'; '*:80' -> '*'."""
    host = local.rsplit(":", 1)[0]
    return host.strip("[]")


class Trickler:
    """A slowloris client: sends its request a byte at a time (or its head at once, then its body
    a byte at a time), never finishing; counts the connections the server closed on it, and opens
    a new one each time, as an attacker keeps the pressure on."""

    def __init__(self, port: int, start: bytes, head_at_once: bool = False) -> None:
        self.port, self.start, self.head_at_once = port, start, head_at_once
        self.closed_by_server = 0
        self._open()

    def _open(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sock.setblocking(False)
        self.sent = len(self.start) if self.head_at_once else 0
        if self.head_at_once:
            self.sock.sendall(self.start)

    def trickle(self) -> None:
        try:
            if self.sent < len(self.start):
                self.sock.send(self.start[self.sent : self.sent + 1])
                self.sent += 1
            else:
                self.sock.send(b"a")
            while self.sock.recv(65536):
                pass  # an answer (408): the close follows
            gone = True  # recv returned b"": closed by the server
        except BlockingIOError:
            gone = False
        except OSError:  # reset: aborted by the server
            gone = True
        if gone:
            self.closed_by_server += 1
            self.sock.close()
            self._open()

    def close(self) -> None:
        self.sock.close()


def wait_until(check: Any, within: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return bool(check())


def gcs_address(serve: ServeProcess) -> str:
    """host:port of the Ray that serve started (its GCS server)."""
    assert serve.proc is not None
    gcs = next(addr for addr, process in listening(process_tree(serve.proc.pid)) if "gcs_server" in process)
    return gcs.replace("[::ffff:", "").replace("]", "")


def actor_names(serve: ServeProcess, home: Path) -> list[str]:
    """Every named actor of serve's Ray, listed by a driver joining it as an operator would."""
    address = gcs_address(serve)
    script = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(json.dumps([a['name'] for a in ray.util.list_named_actors(all_namespaces=True)]))"
    )
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a driver on a loopback-only node: see raynode.py
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))
