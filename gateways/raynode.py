"""Starting or joining Ray, and what `chatservice serve` tells operators about it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from gateways.settings import Settings


@dataclass(frozen=True, slots=True)
class RayInfo:
    """What serve tells operators about the Ray it runs on."""

    owned: bool  # serve started this Ray itself (no RAY_ADDRESS)
    dashboard_url: str | None
    metrics_url: str | None
    log_dir: Path | None


def start_ray(settings: Settings) -> RayInfo:
    """Join RAY_ADDRESS, or start a local Ray with its dashboard."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    owned = settings.ray_address is None
    extra: dict[str, Any] = {}
    if owned and settings.metrics_export_port:
        extra["_metrics_export_port"] = settings.metrics_export_port
    if owned and not settings.ray_dashboard:
        extra["include_dashboard"] = False  # ray.init waits for the dashboard: seconds on a busy machine
    context = ray.init(
        # Without RAY_ADDRESS, a Ray of our own, never a cluster that happens to run on this machine.
        address=settings.ray_address or "local",
        namespace=settings.ray_namespace,
        logging_level=logging.WARNING,
        configure_logging=False,
        # Actor output copied to stdout would break one-JSON-object-a-line; it stays in Ray's logs.
        log_to_driver=settings.log_format == "text",
        **extra,
    )
    url = getattr(context, "dashboard_url", None) or None
    if url and not url.startswith("http"):
        url = f"http://{url}"
    return RayInfo(owned, url, _metrics_url(), _ray_log_dir())


def _metrics_url() -> str | None:
    """This node's Prometheus endpoint (Ray's metrics agent), which exports our metrics too."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("NodeID") == node_id and node.get("MetricsExportPort"):
            return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    return None


def _ray_log_dir() -> Path | None:
    """This node's Ray log directory (<temp dir>/<session>/logs), which the dashboard lists."""
    context = ray.get_runtime_context()
    logs_dir = Path(context.get_temp_dir()) / context.get_session_name() / "logs"
    return logs_dir if logs_dir.is_dir() else None


def alive_nodes() -> int:
    nodes: list[dict[str, object]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sum(1 for node in nodes if node.get("Alive"))
