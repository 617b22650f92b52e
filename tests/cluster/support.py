"""Helpers for the cluster tests: JSON over HTTP to a served gateway, and Prometheus text."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.serve_process import ServeProcess

T = TypeVar("T")
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def call(
    serve: ServeProcess, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", serve.web_port, timeout=120)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} | (headers or {}))
        r = conn.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw and r.getheader("Content-Type", "").startswith(
            "application/json"
        ) else raw
    finally:
        conn.close()


def until(check: Callable[[], T | None], within: float, every: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {within} s (last: {result!r})")
        time.sleep(every)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    line: str


def parse_prometheus(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            samples.append(Sample(m.group(1), labels, float(m.group(3)), line))
    return samples


def scrape(ports: list[int]) -> list[Sample]:
    """Every sample every node's Ray metrics agent exports now."""
    samples: list[Sample] = []
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            samples += parse_prometheus(r.read().decode())
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels` (all workers, all nodes)."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
