"""Database failures at start-up say which, in one line, in `chatservice migrate` and `serve`.

Against the real MariaDB: a wrong password, an unknown database, a user without the CREATE
privilege (made for the test), a closed port, a host that does not resolve, a server that never
answers; SQLite paths that cannot work. At run time clients still hear only "retry shortly",
while the log says which failure it is.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from store import DatabaseURL
from tests.conftest import free_port, free_ports, mysql_required, scratch_database
from tests.serve_process import ServeProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]
SECRET = "s3cret-Pa55"  # a password that must never be printed


def env_for(url: DatabaseURL) -> dict[str, str]:
    ports = free_ports()
    return {**os.environ, **ports, "DATABASE_URL": url.to_url(), "RAY_USAGE_STATS_ENABLED": "0"}


async def fails_in_one_line(command: str, url: DatabaseURL, tmp_path: Path) -> str:
    """Runs the command, expects exit 1 and a one-line reason naming the database; returns it."""
    code, out, err = await run_cli(command, cwd=tmp_path, env=env_for(url))
    assert code == 1, (out, err)
    assert "Traceback" not in err and SECRET not in out + err, err
    assert "Ray" not in err  # nothing else was started
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"chatservice: database {url.redacted()}: "), err
    return line


@pytest.fixture(params=["migrate", "serve"])
def command(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_wrong_password(command: str, mysql_url: DatabaseURL, tmp_path: Path) -> None:
    url = replace(mysql_url, password=SECRET)
    line = await fails_in_one_line(command, url, tmp_path)
    assert f"access denied for user '{url.user}' at {url.host}:{url.port}: wrong user or password" in line


async def test_an_unknown_database(command: str, mysql_url: DatabaseURL, tmp_path: Path) -> None:
    url = replace(mysql_url, database=f"{mysql_url.database}_none{uuid.uuid4().hex[:8]}")
    line = await fails_in_one_line(command, url, tmp_path)
    assert f"unknown database '{url.database}'" in line and "CREATE DATABASE" in line


async def test_a_closed_port(command: str, mysql_url: DatabaseURL, tmp_path: Path) -> None:
    url = replace(mysql_url, host="127.0.0.1", port=free_port())
    line = await fails_in_one_line(command, url, tmp_path)
    assert f"connection refused at 127.0.0.1:{url.port}" in line


async def test_a_host_that_does_not_resolve(mysql_url: DatabaseURL, tmp_path: Path) -> None:
    url = replace(mysql_url, host="chatservice-db.invalid")
    line = await fails_in_one_line("migrate", url, tmp_path)
    assert "host not found: 'chatservice-db.invalid'" in line


async def test_a_server_that_accepts_and_never_answers(mysql_url: DatabaseURL, tmp_path: Path) -> None:
    """asyncmy's connect_timeout covers only the TCP connect; the greeting is waited for by us."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        line = await fails_in_one_line("migrate", replace(mysql_url, host="127.0.0.1", port=port), tmp_path)
    finally:
        silent.close()
    assert f"no answer from 127.0.0.1:{port} within" in line


# -- a user without the CREATE privilege -------------------------------------------------------


def admin_sql(statement: str) -> None:
    """As a MySQL admin: TEST_DATABASE_ADMIN_URL, else root on the local socket (as CI sets up)."""
    client = shutil.which("mariadb") or shutil.which("mysql") or "mysql"
    admin = os.environ.get("TEST_DATABASE_ADMIN_URL")
    if admin:
        a = DatabaseURL.parse(admin)
        tries = [[client, f"-h{a.host}", f"-P{a.port}", f"-u{a.user}", f"-p{a.password}"]]
    else:
        tries = [[client, "-uroot"], ["sudo", "-n", client, "-uroot"]]
    errors = []
    for cmd in tries:
        done = subprocess.run([*cmd, "-e", statement], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        errors.append(done.stderr.strip())
    message = f"no MySQL admin to create a test user (set TEST_DATABASE_ADMIN_URL): {errors}"
    if mysql_required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def without_create(mysql_url: DatabaseURL) -> AsyncIterator[DatabaseURL]:
    """A scratch database and a user who may read and write it but not CREATE in it."""
    async with scratch_database(mysql_url, "p") as db:
        user = f"cs_nocreate_{uuid.uuid4().hex[:8]}"
        hosts = ("%", "localhost")
        for host in hosts:
            admin_sql(
                f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{SECRET}';"
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{db.database}`.* TO '{user}'@'{host}';"
            )
        try:
            yield replace(db, user=user, password=SECRET)
        finally:
            admin_sql(";".join(f"DROP USER IF EXISTS '{user}'@'{host}'" for host in hosts))


async def test_a_user_without_the_create_privilege(
    command: str, without_create: DatabaseURL, tmp_path: Path
) -> None:
    line = await fails_in_one_line(command, without_create, tmp_path)
    assert f"user '{without_create.user}' lacks a privilege on '{without_create.database}'" in line
    assert "CREATE command denied" in line


# -- SQLite -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        ("file-as-directory", "cannot create the directory"),
        ("directory", "is it a directory"),
        ("not-a-database", "is not a SQLite database file"),
    ],
)
async def test_sqlite_paths_that_cannot_work(command: str, make: str, expected: str, tmp_path: Path) -> None:
    if make == "file-as-directory":
        (tmp_path / "taken").write_text("a file, not a directory")
        path = tmp_path / "taken" / "chats.db"
    elif make == "directory":
        path = tmp_path / "chats.db"
        path.mkdir()
    else:
        path = tmp_path / "chats.db"
        path.write_text("these bytes are not a SQLite database, whatever the name says\n" * 20)
    url = DatabaseURL.parse(f"sqlite:///{path}")
    line = await fails_in_one_line(command, url, tmp_path)
    assert expected in line


# -- at run time ---------------------------------------------------------------------------------


class Proxy:
    """A TCP relay to the database that the test can take away, as a network failure would."""

    def __init__(self, target: DatabaseURL) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target.host, self.target.port)
        self._pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.close()
        await self._server.wait_closed()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def serve_factory(ray_session: str) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for serve in started:
        serve.stop()


@pytest.mark.ray
async def test_at_run_time_clients_hear_retry_and_the_log_says_which(
    ray_session: str, mysql_url: DatabaseURL, serve_factory: list[ServeProcess]
) -> None:
    proxy = Proxy(mysql_url)
    await proxy.start()
    via_proxy = replace(mysql_url, host="127.0.0.1", port=proxy.port)
    serve = ServeProcess({"DATABASE_URL": via_proxy.to_url(), "RAY_ADDRESS": ray_session})
    serve_factory.append(serve)
    await asyncio.to_thread(serve.start)
    chats = f"{serve.url}/v1/users/u-db/chats"
    assert (await asyncio.to_thread(get, chats))[0] == 200
    await proxy.stop()

    expected = f"database unavailable: connection refused at 127.0.0.1:{proxy.port}"
    for _ in range(10):
        status, body = await asyncio.to_thread(get, chats)
        assert status == 503 and b"the database is unreachable; retry shortly" in body, body
        assert b"127.0.0.1" not in body and b"refused" not in body  # no detail for clients
        if expected in serve.output():
            break
    assert expected in serve.output(), serve.output()


async def test_at_debug_level_the_drivers_own_error_follows(mysql_url: DatabaseURL, tmp_path: Path) -> None:
    url = replace(mysql_url, password=SECRET)
    env = {**env_for(url), "LOG_LEVEL": "DEBUG"}
    code, _, err = await run_cli("migrate", cwd=tmp_path, env=env)
    assert code == 1 and SECRET not in err
    assert "the driver's own error: OperationalError(1045, \"Access denied for user" in err
