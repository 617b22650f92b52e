"""The original Go service's own .env.example starts `chatservice migrate` and `serve` unchanged.

Only what points at this machine changes: the database (a scratch one on the test MariaDB), the
two ports (free ones), and two added lines for the test LLM server and the session's Ray.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from store import DatabaseURL
from store.migrate import migrations
from tests.conftest import free_port, repo_root, scratch_database
from tests.e2e.test_serve import post
from tests.llm_server import FakeLLM
from tests.serve_process import ServeProcess, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.mysql]
ORIGINAL = repo_root() / "tests" / "fixtures" / "original.env.example"
STOP_LITERAL = '["\\super-end\\"]'


def original_env() -> dict[str, str]:
    lines = [line for line in ORIGINAL.read_text("utf-8").splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def localised(db: DatabaseURL, web: int, grpc: int, extra: dict[str, str]) -> str:
    """The file with its database and ports pointed at this machine, every other line as it was."""
    here = {
        "DB_HOST": db.host,
        "DB_PORT": str(db.port),
        "DB_USER": db.user,
        "DB_PASSWORD": db.password,
        "DB_NAME": db.database,
        "WEB_SERVER_PORT": str(web),
        "GRPC_SERVER_PORT": str(grpc),
    }
    out = []
    for line in ORIGINAL.read_text("utf-8").splitlines():
        key = line.partition("=")[0]
        out.append(f"{key}={here[key]}" if key in here else line)
    return "\n".join([*out, *(f"{k}={v}" for k, v in extra.items())]) + "\n"


def test_the_fixture_is_the_original_file_with_its_stop_value() -> None:
    env = original_env()
    assert env["STOP"] == STOP_LITERAL and env["AUTH_TOKEN"] == "123456" and env["DB_HOST"] == "mysql"
    assert env["INITIAL_CHAT_MESSAGE"].startswith("Seu nome é FC.")


async def test_the_original_env_file_migrates_and_serves(
    ray_session: str, mysql_url: DatabaseURL, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    keys = (*original_env(), "DATABASE_URL", "OPENAI_BASE_URL", "RAY_ADDRESS")
    async with scratch_database(mysql_url, "env") as db:
        web, grpc = free_port(), free_port()
        extra = {"OPENAI_BASE_URL": fake_llm.base_url, "RAY_ADDRESS": ray_session}
        (tmp_path / ".env").write_text(localised(db, web, grpc, extra), "utf-8")
        serve = ServeProcess(
            {"WEB_SERVER_PORT": str(web), "GRPC_SERVER_PORT": str(grpc)}, tmp_path, drop=keys
        )

        code, out, err = await run_cli("migrate", cwd=tmp_path, env=serve.env)
        assert code == 0, err
        assert f"migrated {db.redacted()}: applied {[m.version for m in migrations('mysql')]}" in out
        assert "is not a JSON list: taken literally" in err

        with serve:
            # The original's api/chat.http, request by request.
            status, first = post(
                f"{serve.url}/chat", {"user_id": "1", "user_message": "Olá, qual é o seu nome?"}, "123456"
            )
            assert (status, first["content"]) == (200, "Echo: Olá, qual é o seu nome?"), first
            sent = fake_llm.records[-1].body
            chat_id = "a14fc851-7e95-49b5-a5b5-44479434becd"
            status, second = post(
                f"{serve.url}/chat",
                {"chat_id": chat_id, "user_id": "1", "user_message": "continue"},
                "123456",
            )
            assert (status, second["chat_id"]) == (200, chat_id), second
            assert post(f"{serve.url}/chat", {"user_id": "1", "user_message": "x"}, "wrong")[0] == 401
        assert serve.proc is not None and serve.proc.returncode == 0, serve.output()

    env = original_env()
    assert sent["messages"][0] == {"role": "system", "content": env["INITIAL_CHAT_MESSAGE"]}
    assert (sent["model"], sent["max_tokens"], sent["temperature"], sent["top_p"]) == (
        "gpt-3.5-turbo",
        300,
        0.2,
        0.2,
    )
    assert sent["stop"] == [STOP_LITERAL] and "n" not in sent
    assert serve.output().count("is not a JSON list: taken literally") == 1
