"""The harness's child processes: the load driver and the stateless baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port, repo_root


class Driver:
    """`python -m tests.bench.driver`: commands in on stdin, JSON events out on stdout."""

    def __init__(self) -> None:
        self.log = Path(tempfile.mkstemp(prefix="bench-driver-", suffix=".log")[1])
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.driver"],
                cwd=repo_root(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, cmd: dict[str, Any], on_event: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Send one command; pass window marks to `on_event`; return the result."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue  # anything a library printed
            event = json.loads(line)
            if event["event"] == "result":
                return event
            if on_event is not None:
                on_event(event["event"])
        raise RuntimeError(f"the driver exited:\n{self.log.read_text(errors='replace')[-3000:]}")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Baseline:
    """`python -m tests.bench.baseline` on a free port, waited for until it answers."""

    def __init__(
        self, database_url: str, llm_url: str, context_tokens: int, max_tokens: int, pool: int
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="bench-baseline-", suffix=".log")[1])
        args = [sys.executable, "-m", "tests.bench.baseline", "--port", str(self.port)]
        args += ["--database-url", database_url, "--llm-url", llm_url, "--pool-size", str(pool)]
        args += ["--context-tokens", str(context_tokens), "--max-tokens", str(max_tokens)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, cwd=repo_root(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baseline exited:\n{self.log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("baseline did not start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
