"""Run `chatservice serve` (and other commands) as a subprocess, the way a user does, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from asyncio.subprocess import PIPE
from pathlib import Path

from tests.conftest import free_port


class ServeProcess:
    """`python -m gateways.cli serve` with the given environment; waits until /healthz answers."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path | None = None,
        open_files: int | None = None,
        drop: tuple[str, ...] = (),
    ) -> None:
        """`drop`: keys of this process's environment not to pass on (so a .env in `cwd` decides them)."""
        self.web_port = int(env.get("WEB_SERVER_PORT") or free_port())
        self.grpc_port = int(env.get("GRPC_SERVER_PORT") or free_port())
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in drop},
            "RAY_USAGE_STATS_ENABLED": "0",
            **env,
            "WEB_SERVER_PORT": str(self.web_port),
            "GRPC_SERVER_PORT": str(self.grpc_port),
        }
        self.cwd = cwd
        self.open_files = open_files  # the process's open-file limit (RLIMIT_NOFILE), if not inherited
        self.log = Path(tempfile.mkstemp(prefix="serve-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout: float = 90.0) -> ServeProcess:
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateways.cli", "serve"],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit if self.open_files else None,
            )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        self.ready_after = time.monotonic() - started
                        return self
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"serve was not healthy after {timeout} s:\n{self.output()}")

    def _limit(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as an orchestrator stops it; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """`chatservice <args>` as a user runs it: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateways.cli", *args, cwd=cwd, env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
