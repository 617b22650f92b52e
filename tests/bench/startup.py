"""`python -m tests.bench.startup [--runs N]`: the quick start, timed: `chatservice serve` from nothing.

Each run starts `chatservice serve` with no configuration in an empty directory (its own local Ray,
a new SQLite file, the offline responder), as the README's quick start does, and measures:
  ready        from the process start to the first 200 from /healthz
  first chat   the first answer of a new chat (POST /chat): its conversation actor starts
  second chat  the first answer of another new chat
  next turn    a second answer in the first chat (its actor is live)
  stop         SIGTERM to exit
and the start-up steps the serve logged (each line's time since the process started). It prints
every run and the medians. The machine is shared: read medians of several runs, not one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from tests.conftest import free_port

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


def _post(url: str, body: dict[str, str]) -> float:
    started = time.monotonic()
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        json.loads(response.read())
    return time.monotonic() - started


def _steps(log: str, wall_start: float) -> list[tuple[float, str]]:
    """(seconds since the process started, message) of each timestamped log line."""
    steps = []
    for line in log.splitlines():
        match = _STAMP.match(line)
        if match:
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            steps.append((at - wall_start, match[2][:110]))
    return steps


def run_once(extra_env: dict[str, str]) -> dict[str, object]:
    web, grpc = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": tmp,
            "RAY_USAGE_STATS_ENABLED": "0",
            "WEB_SERVER_PORT": str(web),
            "GRPC_SERVER_PORT": str(grpc),
            **extra_env,
        }
        log_path = Path(tmp) / "serve.log"
        wall_start = time.time()
        started = time.monotonic()
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateways.cli", "serve"], env=env, cwd=tmp, stdout=out, stderr=out
            )
        url = f"http://127.0.0.1:{web}"
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text(errors="replace"))
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                        if response.status == 200:
                            break
                except (OSError, http.client.HTTPException):
                    time.sleep(0.05)
            ready = time.monotonic() - started
            first = _post(f"{url}/chat", {"user_id": "u1", "chat_id": "c1", "user_message": "Olá"})
            second = _post(f"{url}/chat", {"user_id": "u1", "chat_id": "c2", "user_message": "Olá"})
            again = _post(f"{url}/chat", {"user_id": "u1", "chat_id": "c1", "user_message": "De novo"})
        finally:
            stopping = time.monotonic()
            proc.terminate()
            proc.wait(120)
        stop = time.monotonic() - stopping
        log = log_path.read_text(errors="replace")
    return {
        "ready": ready,
        "first chat": first,
        "second chat": second,
        "next turn": again,
        "stop": stop,
        "steps": _steps(log, wall_start),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the serve, repeatable")
    parser.add_argument("--steps", action="store_true", help="print the logged start-up steps of each run")
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.env)
    runs = []
    for n in range(args.runs):
        result = run_once(extra)
        runs.append(result)
        figures = "  ".join(f"{k} {v:.2f} s" for k, v in result.items() if isinstance(v, float))
        print(f"run {n + 1}: {figures}", flush=True)
        if args.steps:
            for at, message in result["steps"]:  # type: ignore[union-attr]
                print(f"    {at:6.2f} s  {message}")
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    medians = "  ".join(f"{k} {statistics.median(r[k] for r in runs):.2f} s" for k in keys)  # type: ignore[misc]
    print(f"median of {len(runs)}: {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
