"""The processes under test: a Ray head the harness owns, the served process, and their CPU and memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.conftest import free_port

CONVERSATION_CLASS = "ConversationActor"
HOST_CLASS = "ConversationHost"
# Every process of the run talks to the harness's own head. Ray turns token auth on by itself
# when a token file exists in the home directory; this private, short-lived head does without.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


class RayHead:
    """`ray start --head --block` on free ports; stopping it stops every process it started.

    The served process joins it with RAY_ADDRESS, so the driver can measure the same Ray's
    ceiling and the harness can read actor pids from Ray's state API.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.dashboard_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = node_ip()
        self.temp_dir = tempfile.mkdtemp(prefix="rb-")
        self.log = Path(tempfile.mkstemp(prefix="bench-ray-", suffix=".log")[1])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 240.0) -> RayHead:
        ray_cli = Path(sys.executable).with_name("ray")
        ports = {
            "--port": self.port,
            "--dashboard-port": self.dashboard_port,
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
            "--ray-client-server-port": free_port(),
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
        }
        args = [str(ray_cli), "start", "--head", "--block"]
        args += [f"{k}={v}" for k, v in ports.items()]
        # A temp dir of its own: `ray start` records its address in the temp dir, and a bare
        # ray.init() anywhere on the machine would join a head recorded in the shared one.
        args += ["--include-dashboard", "true", "--disable-usage-stats", f"--temp-dir={self.temp_dir}"]
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | RAY_ENV
        with self.log.open("ab") as out:
            # A session of its own: stopping the head signals the whole group it started.
            self.proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            if self._dashboard_answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Ray head not ready after {timeout} s:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def _dashboard_answers(self) -> bool:
        # Ask the dashboard over HTTP: a GCS client made before the GCS is up stays broken.
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.dashboard_port}/api/version", timeout=2
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._stop_group()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _stop_group(self) -> None:
        assert self.proc is not None
        tree = ProcessTree([self.proc.pid]).processes()
        # The whole group at once; `ray start --block` would otherwise drain for 30 s first.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for p in tree:  # anything of this head's that outlived the signal
            with contextlib.suppress(psutil.Error):
                p.kill()


def node_ip() -> str:
    """The address Ray binds its services to on this machine (what `ray start` picks itself)."""
    from ray.util import get_node_ip_address

    return str(get_node_ip_address())


def live_actors(address: str, class_name: str = CONVERSATION_CLASS) -> list[tuple[str, int]]:
    """(name, pid) of every ALIVE actor of the class, from Ray's state API."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=address,
        filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")],
        limit=10_000,
        raise_on_missing_output=False,
    )
    return [(a.name or "", int(a.pid or 0)) for a in actors]


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int
    processes: int


class ProcessTree:
    """Some root processes and all their descendants, for CPU and memory accounting."""

    def __init__(self, roots: Iterable[int]) -> None:
        self.roots = list(roots)

    def processes(self) -> list[psutil.Process]:
        found: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                for p in [root, *root.children(recursive=True)]:
                    found[p.pid] = p
            except psutil.Error:
                continue
        return list(found.values())

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds so far, grouped: the gateway (the roots' first), conversation actors, Ray's own."""
        out: dict[str, float] = {}
        for p in self.processes():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    kind = _kind(p, self.roots[0])
            except psutil.Error:
                continue
            out[kind] = out.get(kind, 0.0) + t.user + t.system
        return out

    def usage(self) -> Usage:
        cpu, rss, n = 0.0, 0, 0
        for p in self.processes():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    rss += p.memory_info().rss
                n += 1
            except psutil.Error:
                continue
        return Usage(cpu, rss, n)


def _kind(p: psutil.Process, gateway: int) -> str:
    if p.pid == gateway:
        return "gateway"
    name = p.name()
    if name in ("raylet", "gcs_server"):
        return name
    title = " ".join(p.cmdline()[:1])
    if CONVERSATION_CLASS in title or title.startswith("ray::chat:"):
        return "conversation actors"
    if HOST_CLASS in title or title.startswith("ray::host:"):
        return "conversation hosts"
    if title.startswith("ray::IDLE"):
        return "idle Ray workers"
    return "other Ray processes"


def rss_of(pids: Iterable[int]) -> list[dict[str, int]]:
    """RSS and USS (memory only that process holds) of each pid that still exists."""
    out = []
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        out.append(
            {"pid": pid, "rss": int(info.rss), "uss": int(info.uss), "pss": int(getattr(info, "pss", 0))}
        )
    return out
