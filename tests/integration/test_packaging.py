"""The built wheel carries what the service needs at run time: migrations and tiktoken data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import repo_root


def test_the_wheel_ships_migrations_and_vendored_encodings(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo_root())],
        check=True,
    )
    (wheel,) = tmp_path.glob("chatservice-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"store/migrations/mysql/0001_init.sql", "store/migrations/sqlite/0001_init.sql"} <= names
    assert "gateways/llm/encodings/fb374d419588a4632f3f557e76b4b70aebbca790" in names  # o200k_base
    assert "gateways/llm/encodings/9b5ad71b2ce5302211f9c61530b329a4922fc6a4" in names  # cl100k_base
    assert any(n.endswith("entry_points.txt") for n in names)
