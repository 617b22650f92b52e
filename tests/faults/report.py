"""The fault suite's report: one row per scenario, written as JSON and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_DIR = Path("artifacts") / "faults"


def record(scenario: str, row: dict[str, Any]) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{scenario.split('.')[0]}.json").write_text(json.dumps({"scenario": scenario, **row}))


def table() -> str:
    """The rows recorded so far, as a Markdown table (empty if none)."""
    rows = [json.loads(p.read_text()) for p in sorted(REPORT_DIR.glob("*.json"))]
    rows = [r for r in rows if "scenario" in r]
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    (REPORT_DIR / "report.md").write_text(text)
    return text
