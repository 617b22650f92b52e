"""`pip install .` alone is enough to serve: nothing the service runs needs the dev or bench extras.

Every process of a served `chatservice serve` (the gateway, its own Ray's processes, the
conversation actors) runs with the packages only those extras bring made unimportable, as in a
bare install; it must start, answer and stop cleanly.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.request
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import repo_root
from tests.serve_process import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.ray]
SEEDED = ["pip", "setuptools"]  # what a new virtual environment starts with

# Refuses a top-level module found where only an extra installs it (a copy vendored elsewhere, such
# as Ray's own psutil, still imports, as it does in a bare install).
BLOCKER = """
import importlib.abc, importlib.machinery, os, sys
BLOCKED = tuple({blocked!r})
class _Bare(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if path is not None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name)
        origin = (spec and spec.origin) or ""
        if any(origin.startswith((b + os.sep, b + ".")) for b in BLOCKED):
            raise ImportError(f"{{name}} comes only with the dev or bench extra (a bare install lacks it)")
        return None
sys.meta_path.insert(0, _Bare())
"""


def closure(requirements: list[str]) -> set[str]:
    """The installed distributions these requirements pull in, transitively (extras honoured)."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = distribution(req.name).requires or []
        except PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return {name for name, _ in seen}


def extras_only_modules() -> dict[str, str]:
    """Top-level modules that only the dev and bench extras install -> where they are installed."""
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    base = closure([*project["dependencies"], *SEEDED])
    only = closure([*extras["dev"], *extras["bench"]]) - base
    # Where pip put them (not a copy vendored elsewhere, such as Ray's psutil, whose metadata can
    # come first once Ray is imported in this process).
    site = Path(str(distribution("ray").locate_file("")))
    return {
        module: str(site / module)
        for module, dists in packages_distributions().items()
        if module.isidentifier() and {canonicalize_name(d) for d in dists} <= only
    }


def test_the_extras_bring_the_dev_tools_and_the_base_does_not(ray_session: str) -> None:
    """Also once Ray is imported here (its vendored packages then come first on sys.path)."""
    blocked = set(extras_only_modules())
    assert {"pytest", "mypy", "ruff", "grpc_tools", "hypothesis", "playwright"} <= blocked
    assert not {"ray", "grpc", "aiohttp", "openai", "tiktoken", "asyncmy", "twilio", "yaml"} & blocked
    assert all("thirdparty_files" not in where for where in extras_only_modules().values())


def test_serve_runs_without_the_extras(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(extras_only_modules().values())))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    with ServeProcess({"PYTHONPATH": path}, cwd=tmp_path) as serve:
        body = json.dumps({"user_id": "u1", "user_message": "Olá"}).encode()
        request = urllib.request.Request(f"{serve.url}/chat", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert answer["content"].startswith("[offline]")
    assert serve.proc is not None and serve.proc.returncode == 0, serve.output()
    assert "comes only with the dev or bench extra" not in serve.output()
