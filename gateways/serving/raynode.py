"""Starting or joining Ray, and what `chatservice serve` tells operators about it."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from gateways.settings import Settings, is_loopback

log = logging.getLogger("chatservice")


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
    local_only = owned and is_loopback(settings.host)
    if owned:
        private_token_file()
    if local_only:
        loopback_only()
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
    if local_only and not _on_loopback():
        log.warning("the local Ray did not take 127.0.0.1 as its address: its ports may be reachable")
    if owned:
        private_token_file()  # in case Ray wrote one after all
    return RayInfo(owned, url, _metrics_url(), _ray_log_dir())


def loopback_only() -> None:
    """Make the Ray that serve starts listen on loopback only (GCS, raylet, workers, metrics, agents).

    Ray replaces a loopback node address given to ray.init with the machine's own address unless
    it considers clusters unsupported, as on macOS; saying so for this process is what makes every
    Ray server bind 127.0.0.1. A Ray that other machines join is started with `ray start`.
    """
    from ray._private import ray_constants  # no public switch for this (Ray 2.x)

    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def _on_loopback() -> bool:
    nodes: list[dict[str, object]] = ray.nodes()  # type: ignore[no-untyped-call]
    return all(is_loopback(str(node.get("NodeManagerAddress"))) for node in nodes if node.get("Alive"))


def private_token_file() -> None:
    """~/.ray/auth_token, readable by its owner only.

    Ray writes that file with the process umask (world-readable, usually) when it starts a local
    cluster with token authentication and no token exists; anyone on the machine could then use
    the cluster. The file is created 0600 first (a random token, as Ray makes), or tightened.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return  # the operator's token: not ours to write
    path = Path.home() / ".ray" / "auth_token"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return
    except OSError as exc:  # no writable home: Ray finds no token file either, and says so
        log.warning("cannot write %s (%s): Ray's token is not kept in a file", path, exc.strerror)
        return
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))


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
