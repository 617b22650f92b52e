"""README.md and DESIGN.md link to what exists: files, headings, and the code paths they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "DESIGN.md", "tests/bench/results/notes.md", "tests/faults/results/report.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`((?:actors|store|gateways|tests|proto)/[\w./-]*)`")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_reaches_a_file_and_heading_that_exist(doc: str) -> None:
    source = ROOT / doc
    broken = []
    for target in LINK.findall(source.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists() or (anchor and anchor not in anchors(path)):
            broken.append(target)
    assert not broken, f"{doc} links to nothing: {broken}"


def test_the_code_paths_design_names_exist() -> None:
    named = CODE_PATH.findall((ROOT / "DESIGN.md").read_text())
    assert named
    missing = [p for p in named if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"DESIGN.md names paths that do not exist (update its tables): {missing}"
