"""A MariaDB server of the fault suite's own, on a free port, that a test may stop and start again."""

from __future__ import annotations

import getpass
import shutil
import signal
import subprocess
import time
from pathlib import Path

from store import DatabaseURL
from tests.conftest import free_port


def server_binary() -> str | None:
    return shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")


class PrivateMariaDB:
    """mariadb-install-db into a fresh directory, then mariadbd on 127.0.0.1:<free port>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = DatabaseURL.parse(f"mysql://root@127.0.0.1:{self.port}/chatservice")

    def install(self) -> PrivateMariaDB:
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if install is None:
            raise RuntimeError("mariadb-install-db is not installed")
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--user={getpass.getuser()}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        return self

    def start(self, timeout: float = 30.0) -> None:
        binary = server_binary()
        assert binary is not None
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--user={getpass.getuser()}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--max-connections=300",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private MariaDB did not start: {(self.root / 'server.log').read_text()}")
            time.sleep(0.1)
        self.sql("CREATE DATABASE IF NOT EXISTS chatservice CHARACTER SET utf8mb4")

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM shuts down cleanly; SIGKILL is a crash (InnoDB recovers on the next start)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(how)
            self.proc.wait(60)

    def answers(self) -> bool:
        try:
            self.sql("SELECT 1")
        except subprocess.CalledProcessError:
            return False
        return True

    def sql(self, statement: str) -> str:
        client = shutil.which("mariadb") or shutil.which("mysql") or "mysql"
        done = subprocess.run(
            [client, "--protocol=tcp", "-h127.0.0.1", f"-P{self.port}", "-uroot", "-N", "-e", statement],
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout
