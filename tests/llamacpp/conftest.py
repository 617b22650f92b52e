"""Fixtures for the real llama.cpp tests: the tiny model (built once a session) and its server.

Skipped when llama-cpp-python (the `llamacpp` extra) is not installed, unless
CHATSERVICE_REQUIRE_LLAMACPP=1 (as in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.llamacpp.server import LlamaServer

NEEDED = ("llama_cpp", "gguf", "sentencepiece")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if not missing or os.environ.get("CHATSERVICE_REQUIRE_LLAMACPP") == "1":
        return
    skip = pytest.mark.skip(
        reason=f"{', '.join(missing)} not installed: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install -e '.[llamacpp]'"
    )
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def llama_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.llamacpp.model import build_model

    return build_model(tmp_path_factory.mktemp("llama-model"))


@pytest.fixture(scope="session")
def llama_server(llama_model: Path) -> Iterator[LlamaServer]:
    from tests.llamacpp.server import LlamaServer

    with LlamaServer(llama_model) as server:
        yield server
