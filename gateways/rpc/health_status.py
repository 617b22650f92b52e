"""grpc.health.v1 fed by Readiness: NOT_SERVING until Ray and the store answer, re-checked often."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grpc_health.v1 import health, health_pb2

from gateways.serving.readiness import Readiness

log = logging.getLogger("chatservice.grpc")
CHECK_INTERVAL_SECONDS = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    """Sets the status of the server ("") and of each service from periodic readiness checks."""

    def __init__(self, readiness: Readiness, services: tuple[str, ...]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._readiness = readiness
        self._names = ("", *services)
        self._task: asyncio.Task[None] | None = None
        self._serving: bool | None = None

    async def start(self) -> None:
        await self._publish(False)
        self._task = asyncio.create_task(self._watch(), name="grpc-health")

    async def _watch(self) -> None:
        while True:
            try:
                checks = await self._readiness.check()
            except Exception as exc:  # a failing check must not end the watch
                checks = {"check": False}
                log.warning("gRPC health: readiness check failed: %r", exc)
            ready = all(checks.values())
            if ready != self._serving:
                log.info("gRPC health: %s %s", "SERVING" if ready else "NOT_SERVING", checks)
                await self._publish(ready)
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)

    async def _publish(self, serving: bool) -> None:
        self._serving = serving
        for name in self._names:
            await self.servicer.set(name, SERVING if serving else NOT_SERVING)

    async def stop(self) -> None:
        """NOT_SERVING for good: load balancers stop sending while running calls finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.servicer.enter_graceful_shutdown()
