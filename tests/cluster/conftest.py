"""A two-node Ray cluster (head + node `a`) shared by the cluster tests, and gateways joined to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from store import DatabaseURL
from tests.llm_server import FakeLLM
from tests.ray_cluster import RayCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """A fresh cluster for each test module, so one module's metrics never mix with another's."""
    ray_cluster = RayCluster()
    try:
        ray_cluster.start()
        ray_cluster.add_node("a")
        yield ray_cluster
    finally:
        ray_cluster.stop()


@pytest.fixture
def gateway_env(cluster: RayCluster, mysql_url: DatabaseURL, fake_llm: FakeLLM) -> dict[str, str]:
    """`chatservice serve` joined to the cluster (as `--no-ray-head` gateways are), MariaDB, the test LLM."""
    return cluster.env | {
        "DATABASE_URL": mysql_url.to_url(),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "AUTO_TITLE": "0",
    }
