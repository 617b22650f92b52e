"""A Ray cluster on one machine for tests: a head and more nodes, each a `ray start --block` we own.

Every node gets its own ports and the cluster its own temp dir and auth token, so it never touches
another Ray on the machine (no `ray stop`, never port 6379). Nodes are ended by process id only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import free_port

HEAD_ENV = {
    # The head declares a node dead after `threshold` missed health checks `period` apart (about
    # half a minute by default): quicker in tests.
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "4",
    # `ray start` gives the dashboard 60 s to come up; a machine busy with other tests needs more.
    "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300",
}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Ray's workers start their own sessions, not groups)."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, []))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class RayNode:
    """One `ray start --block` process and what it starts."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    node_id: str = ""

    def kill(self) -> None:
        """Lose the node at once: SIGKILL to its raylet, agents and conversation actors."""
        _kill_all(descendants(self.proc.pid), signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to whatever is left (`ray start --block` took 30 s and more to
        end on SIGTERM: a minute of every cluster module's teardown, with nothing left to save)."""
        pids = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill_all([p for p in pids if _alive(p)], signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)


@dataclass
class RayCluster:
    """A head node with the dashboard, plus worker nodes added on demand."""

    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rc-")))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to join: the address and the cluster's token."""
        return {
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def start(self) -> RayCluster:
        head = [
            "--head",
            f"--port={self.gcs_port}",
            f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--ray-client-server-port={free_port()}",
        ]
        self._start("head", head, HEAD_ENV)
        return self

    def add_node(self, name: str) -> RayNode:
        return self._start(name, [f"--address={self.address}"], {})

    def _start(self, name: str, args: list[str], extra_env: dict[str, str]) -> RayNode:
        metrics_port = free_port()
        log = self.temp_dir / f"{name}.out"
        command = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            *args,
            "--block",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            "--num-cpus=1",
            f"--metrics-export-port={metrics_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--resources={json.dumps({f'node_{name}': 1})}",
        ]
        env = {**os.environ, **self.env, **extra_env}
        env.pop("RAY_ADDRESS")  # the head must not try to join itself
        with log.open("ab") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        node = RayNode(name, proc, log, metrics_port)
        self.nodes.append(node)
        node.node_id = self._wait_for_node(node)
        return node

    def _wait_for_node(self, node: RayNode, timeout: float = 400.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"ray start {node.name} exited:\n{node.log.read_text(errors='replace')}")
            try:
                for n in self.alive_nodes():
                    if f"node_{node.name}" in n["resources_total"]:
                        return str(n["node_id"])
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"node {node.name} did not join:\n{node.log.read_text(errors='replace')}")

    def alive_nodes(self) -> list[dict[str, Any]]:
        nodes = self.api("/api/v0/nodes?limit=100")["data"]["result"]["result"]
        return [n for n in nodes if n["state"] == "ALIVE"]

    def api(self, path: str) -> Any:
        """GET JSON from the dashboard's HTTP API."""
        return json.loads(self.api_text(path))

    def api_text(self, path: str) -> str:
        """GET from the dashboard's HTTP API (the dashboard asks for the cluster's token)."""
        request = urllib.request.Request(
            self.dashboard + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return str(r.read().decode(errors="replace"))

    def metrics_ports(self) -> list[int]:
        return [n.metrics_port for n in self.nodes if n.proc.poll() is None]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
