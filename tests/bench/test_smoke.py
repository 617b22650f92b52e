"""The benchmark's smoke run (what CI runs): it completes and reports every figure; it judges no number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import DatabaseURL
from tests.conftest import repo_root

pytestmark = [pytest.mark.bench, pytest.mark.e2e, pytest.mark.ray, pytest.mark.mysql]
TARGETS = ("direct", "grpc_v1", "grpc_legacy", "http_sse", "baseline")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and value == value  # not NaN


def _check_phase_rows(rows: list[dict[str, object]], levels: list[int], histories: list[int]) -> None:
    for target in TARGETS:
        mine = [r for r in rows if r["target"] == target]
        expected = len(levels) * (len(histories) if target == "baseline" else 1)
        assert len(mine) == expected, (target, len(mine))
        for r in mine:
            assert r["turns"] > 0 and not r["errors"], r  # type: ignore[operator]
            for key in ("ttft_ms", "total_ms", "overhead_ttft_ms", "overhead_total_ms"):
                assert all(_number(r[key][q]) for q in ("p50", "p95", "p99")), (target, key, r[key])  # type: ignore[index]
            cpu = r["cpu_ms_per_turn"]
            assert _number(cpu["test_llm"]) and _number(cpu["driver"])  # type: ignore[index]
            assert (cpu["service"] is None) == (target == "direct"), (target, cpu)  # type: ignore[index]


def test_smoke_run_reports_every_figure(tmp_path: Path, mysql_url: DatabaseURL) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra is not installed: pip install -e '.[bench]'")
    pytest.importorskip("psutil", reason="the bench extra is not installed: pip install -e '.[bench]'")
    env = {**os.environ, "TEST_DATABASE_URL": mysql_url.to_url()}
    run = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--smoke", "--out", str(tmp_path)],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=420,  # two more served processes measure EVICT_TO
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    levels = results["meta"]["config"]["concurrency"]
    histories = results["meta"]["config"]["baseline_histories"]
    _check_phase_rows(results["throughput"], levels, histories)
    _check_phase_rows(results["overhead"], levels, histories)

    ray, db = results["ceiling"]["ray"], results["ceiling"]["mariadb"]
    assert _number(ray["round_trip"]["p50_ms"]) and ray["calls_per_s"] > 0
    assert _number(db["insert_commit"]["p50_ms"]) and db["commits_per_s_8_connections"] > 0

    points = results["memory"]["points"]
    assert points[0]["live_chats"] == 0 and len(points) >= 2
    assert all(p["live_chats"] > 0 and p["actor_rss_mb"]["mean"] > 0 for p in points[1:])

    for n in results["meta"]["config"]["cold_histories"]:
        cold = results["cold_activation"][f"history_{n}"]
        assert _number(cold["cold_ttft_ms"]["p50"]) and _number(cold["warm_ttft_ms"]["p50"])

    assert len(results["targets"]) == 7 and all(isinstance(t["met"], bool) for t in results["targets"])
    levels = results["prefix_cache"]["levels"]
    assert set(levels) == {"1.0", "0.75"}
    for f in levels.values():
        assert f["turns"] > 0 and f["mean_prompt_tokens"] > 0
        shares = [f["prefix_stable_share"], f["kv_cache_hit_share"], f["openai_cached_share"]]
        assert all(0 <= s <= 1 for s in [*shares, *f["input_cost_vs_no_cache"].values()]), f

    assert "## Targets" in (tmp_path / "results.md").read_text()
    assert "## Prefix-stable turns" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_placements_smoke_run_reports_both_placements_and_the_scale_run(
    tmp_path: Path, mysql_url: DatabaseURL
) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed: pip install -e '.[bench]'")
    env = {**os.environ, "TEST_DATABASE_URL": mysql_url.to_url()}
    run = subprocess.run(
        [sys.executable, "-m", "tests.bench.placements", "--smoke", "--out", str(tmp_path)],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads((tmp_path / "placements.json").read_text())
    assert set(results["placements"]) == {"actor", "hosted"}
    for placement in results["placements"].values():
        assert placement["new_chats"]["ttft_ms"]["n"] == 10
        for row in placement["phases"]:
            assert row["turns"] > 0 and not row["errors"], row
            assert _number(row["cpu_ms_per_turn"]["service"]) and _number(row["overhead_ttft_ms"]["p50"])
    assert {r["target"] for r in results["baseline"]} == {"direct", "baseline"}
    scale = results["scale"]
    assert scale["live_chats"] == 20 and len(scale["host_rss_mb"]) == 2
    assert scale["connections_peak"] <= scale["max_connections"]
    assert _number(scale["cold_ttft_ms"]["p50"]) and _number(scale["warm_ttft_ms"]["p50"])
    assert "## Hosted at 20 live chats" in (tmp_path / "placements.md").read_text()
