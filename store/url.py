"""Parse DATABASE_URL (mysql://user:pass@host:port/db or sqlite:///path) into its parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    kind: str  # "mysql" or "sqlite"
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = ""
    database: str = ""
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        """Raise ValueError with a readable reason for anything that is not a usable URL."""
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0]  # accept mysql+asyncmy:// as SQLAlchemy users write it
        if scheme == "sqlite":
            if parts.netloc:
                raise ValueError("sqlite URL takes no host: sqlite:///relative.db or sqlite:////abs.db")
            raw = unquote(parts.path)[1:]
            if not raw:
                raise ValueError("sqlite URL needs a file path, e.g. sqlite:///chatservice.db")
            return cls(kind="sqlite", path=str(Path(raw).expanduser().resolve()))
        if scheme in ("mysql", "mariadb"):
            database = parts.path.lstrip("/")
            if not parts.hostname or not database:
                raise ValueError("mysql URL needs a host and a database, e.g. mysql://u:p@host:3306/db")
            try:
                port = parts.port or 3306
            except ValueError:
                raise ValueError("mysql URL has a port that is not a number") from None
            return cls(
                kind="mysql",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                database=unquote(database),
            )
        raise ValueError(f"unsupported scheme {parts.scheme!r}: use mysql:// or sqlite:///")

    @classmethod
    def mysql(cls, host: str, port: int, user: str, password: str, database: str) -> DatabaseURL:
        return cls(kind="mysql", host=host, port=port, user=user, password=password, database=database)

    def to_url(self, *, redact: bool = False) -> str:
        """The URL again; with `redact` the password is hidden (for logs and banners)."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        secret = (":***" if redact else f":{quote(self.password, safe='')}") if self.password else ""
        return f"mysql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{quote(self.database)}"

    def redacted(self) -> str:
        return self.to_url(redact=True)

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted()!r})"
