"""The fault suite's fixtures: a MariaDB of its own, a chaotic LLM, and the report at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from store.migrate import migrate
from tests.conftest import mysql_required
from tests.faults import report
from tests.faults.hosted import end_hosts
from tests.faults.mariadb import PrivateMariaDB, server_binary
from tests.llm_server import FakeLLM

TOKEN = "fault-suite-token"
NAMESPACES = "faults-"  # every deployment of the suite runs in a Ray namespace of its own, named so
HOSTS = "3"  # a hosted deployment's hosts (the test Ray is one node): a kill stops a third of the chats


@pytest.fixture(scope="session")
def fault_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    """A MariaDB server the fault suite may stop and start, apart from everyone else's."""
    if server_binary() is None:
        if mysql_required():
            pytest.fail("mariadbd is not installed")
        pytest.skip("mariadbd is not installed: the fault suite needs a MariaDB server of its own")
    db = PrivateMariaDB(Path(tmp_path_factory.mktemp("mariadb"))).install()
    db.start()
    asyncio.run(migrate(db.url))
    yield db
    db.stop()


@pytest.fixture(scope="session", autouse=True)
def fresh_report() -> None:
    """Rows of earlier runs do not belong in this run's table."""
    for old in report.REPORT_DIR.glob("*.json"):
        old.unlink()


@pytest.fixture
def fault_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm


@pytest.fixture(autouse=True)
def hosts_end_with_their_scenario() -> Iterator[None]:
    """Detached host actors would outlive their scenario in the shared Ray, each a process holding
    database connections: the scenario's deployment is over when the test is."""
    yield
    if ray.is_initialized():
        end_hosts(NAMESPACES)


def serve_env(
    ray_address: str, db: PrivateMariaDB, llm: FakeLLM, placement: str = "actor", **extra: str
) -> dict[str, str]:
    """`chatservice serve` joined to the test Ray, in a namespace of its own, with no rate limits;
    `placement` is CONVERSATION_PLACEMENT (hosted: on HOSTS hosts)."""
    hosted = {"HOSTS_PER_NODE": HOSTS} if placement == "hosted" else {}
    return {
        "RAY_ADDRESS": ray_address,
        "RAY_NAMESPACE": f"{NAMESPACES}{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": db.url.to_url(),
        "OPENAI_API_KEY": "sk-faults",
        "OPENAI_BASE_URL": llm.base_url,
        "AUTO_TITLE": "0",
        "AUTH_TOKEN": TOKEN,
        "CHAT_TURNS_PER_MINUTE": "0",
        "USER_TURNS_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "CONVERSATION_PLACEMENT": placement,
        **hosted,
        **extra,
    }


def pytest_terminal_summary(terminalreporter: Any) -> None:
    text = report.table()
    if text:
        terminalreporter.write_sep("=", "fault suite")
        terminalreporter.write(text)
