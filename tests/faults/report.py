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
    rows = [r if "scenario" in r else _fuzz_row(r) for r in rows]
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    (REPORT_DIR / "report.md").write_text(text)
    return text


def _fuzz_row(fuzz: dict[str, Any]) -> dict[str, Any]:
    """Scenario 6 (test_fuzz.py) writes its own tally; this is its row in the table."""
    checks = fuzz["checks"]
    return {
        "scenario": "6. hypothesis input on every route, the webhook, every RPC",
        "turns sent": f"{fuzz['requests']} requests",
        "half-stored": len(checks["violations"]),
        "errors by code": f"5xx or UNKNOWN: {fuzz['server_errors']}",
    }
