"""The report: targets judged, then results.json, results.md and a latency chart (PNG)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tests.bench import prefix
from tests.bench.config import INTERFACES, RAY_CALLS_PER_TURN

OVERHEAD_LEVEL = 50
LABELS = {
    "direct": "test LLM alone",
    "grpc_v1": "gRPC v1",
    "grpc_legacy": "gRPC ChatStream",
    "http_sse": "HTTP SSE",
    "baseline": "stateless baseline",
}


def _rows(
    results: dict[str, Any], kind: str, target: str, history: int | None = None
) -> list[dict[str, Any]]:
    return [
        r for r in results[kind] if r["target"] == target and (history is None or r["history"] == history)
    ]


def _peak(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return max(rows, key=lambda r: r["turns_per_s"])


def _level(results: dict[str, Any]) -> int:
    levels = sorted({r["concurrency"] for r in results["overhead"]})
    return OVERHEAD_LEVEL if OVERHEAD_LEVEL in levels else levels[-1]


def judge(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: what was measured, the limit, met or not."""
    out = []
    level = _level(results)
    for target in INTERFACES:
        row = next(r for r in _rows(results, "overhead", target) if r["concurrency"] == level)
        o = row["overhead_ttft_ms"]
        out.append(
            {
                "target": f"TTFT overhead at {level} chats, {LABELS[target]}",
                "measured": f"p50 {o['p50']:.1f} ms, p99 {o['p99']:.1f} ms",
                "limit": "p50 <= 10 ms, p99 <= 50 ms",
                "met": o["p50"] <= 10 and o["p99"] <= 50,
            }
        )
    ours = _peak(_rows(results, "throughput", "grpc_v1"))
    calls = results["ceiling"]["ray"]["calls_per_s"]
    need = 0.4 * calls / RAY_CALLS_PER_TURN
    out.append(
        {
            "target": "throughput vs Ray ceiling (gRPC v1, zero-latency LLM, peak)",
            "measured": f"{ours['turns_per_s']:.0f} turns/s at {ours['concurrency']} chats "
            f"({ours['turns_per_s'] * RAY_CALLS_PER_TURN / calls:.0%} of {calls:.0f} calls/s / {RAY_CALLS_PER_TURN})",
            "limit": f">= 40% of ceiling / calls per turn = {need:.0f} turns/s",
            "met": ours["turns_per_s"] >= need,
        }
    )
    longest = max(r["history"] for r in results["throughput"] if r["target"] == "baseline")
    base = _peak(_rows(results, "throughput", "baseline", longest))
    out.append(
        {
            "target": f"throughput vs stateless baseline at history {longest} (peak vs peak)",
            "measured": f"{ours['turns_per_s'] / base['turns_per_s']:.2f}x "
            f"({ours['turns_per_s']:.0f} vs {base['turns_per_s']:.0f} turns/s)",
            "limit": ">= 2x",
            "met": ours["turns_per_s"] >= 2 * base["turns_per_s"],
        }
    )
    top = results["memory"]["points"][-1]
    out.append(
        {
            "target": "RSS per live conversation actor",
            "measured": f"{top['actor_rss_mb']['mean']:.1f} MB mean ({top['actor_rss_mb']['uss_mean']:.1f} MB unshared) "
            f"with {top['live_chats']} live",
            "limit": "<= 60 MB",
            "met": top["actor_rss_mb"]["mean"] <= 60,
        }
    )
    cold_key = max(
        (k for k in results["cold_activation"] if k.startswith("history_")), key=lambda k: int(k[8:])
    )
    cold = results["cold_activation"][cold_key]["cold_ttft_ms"]
    out.append(
        {
            "target": f"cold activation, {cold_key[8:]} stored messages, to first token",
            "measured": f"p50 {cold['p50']:.0f} ms, max {cold['max']:.0f} ms",
            "limit": "<= 500 ms",
            "met": cold["p50"] <= 500,
        }
    )
    return out


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _series(results: dict[str, Any], kind: str) -> list[tuple[str, list[dict[str, Any]]]]:
    series = [(LABELS[t], _rows(results, kind, t)) for t in ("direct", *INTERFACES)]
    histories = sorted({r["history"] for r in results[kind] if r["target"] == "baseline"})
    series += [(f"baseline, history {h}", _rows(results, kind, "baseline", h)) for h in histories]
    return series


def markdown(results: dict[str, Any]) -> str:
    m = results["meta"]
    cfg = m["config"]
    lines = [
        "# chatservice benchmark results",
        "",
        f"{m['when']}; {m['machine']['cpus']} CPUs, {m['machine']['memory_gib']} GiB, Python {m['machine']['python']}; "
        f"run took {m['elapsed_s']:.0f} s{' (smoke run: small numbers, not a measurement)' if m['smoke'] else ''}.",
        f"Service chats hold {cfg['history']} stored messages in a {cfg['context_tokens']}-token window (every turn "
        f"evicts); each phase warms up {cfg['warmup']} s and measures {cfg['duration']} s.",
        "",
        "## Targets",
        "",
        "| target | measured | limit | met |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {t['target']} | {t['measured']} | {t['limit']} | {'yes' if t['met'] else '**no**'} |"
        for t in results["targets"]
    ]
    for kind, llm in (("throughput", cfg["throughput_llm"]), ("overhead", cfg["overhead_llm"])):
        series = _series(results, kind)
        levels = sorted({r["concurrency"] for r in results[kind]})
        lines += [
            "",
            f"## {kind.capitalize()} phase: LLM ttft {llm['ttft'] * 1000:.0f} ms, {llm['token_delay'] * 1000:.0f} ms/token, "
            f"{llm['words']} words",
            "",
            "Turns per second (closed loop: each chat sends its next message when the answer ends):",
            "",
            "| concurrent chats | " + " | ".join(name for name, _ in series) + " |",
            "| --- |" + " --- |" * len(series),
        ]
        for c in levels:
            cells = [
                _f(next((r["turns_per_s"] for r in rows if r["concurrency"] == c), None))
                for _, rows in series
            ]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Overhead = client-side time minus the LLM's configured time; CPU = CPU time of the served process, Ray "
            "and its actors (or of the baseline) per turn:",
            "",
            "| interface | chats | TTFT p50 / p95 / p99 ms | TTFT overhead p50 / p95 / p99 ms | turn overhead p50 / p99 ms "
            "| service CPU ms/turn | errors |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, rows in series:
            for r in rows:
                t, o, ot = r["ttft_ms"], r["overhead_ttft_ms"], r["overhead_total_ms"]
                lines.append(
                    f"| {name} | {r['concurrency']} | {_f(t.get('p50'))} / {_f(t.get('p95'))} / {_f(t.get('p99'))} "
                    f"| {_f(o.get('p50'))} / {_f(o.get('p95'))} / {_f(o.get('p99'))} | {_f(ot.get('p50'))} / {_f(ot.get('p99'))} "
                    f"| {_f(r['cpu_ms_per_turn']['service'], 2)} | {sum(r['errors'].values()) or ''} |"
                )
    lines += _cold_memory_ceiling(results)
    if "prefix_cache" in results:  # runs before EVICT_TO have none
        lines += prefix.markdown(results["prefix_cache"])
    return "\n".join(lines) + "\n"


def _cold_memory_ceiling(results: dict[str, Any]) -> list[str]:
    cold = results["cold_activation"]
    lines = [
        "",
        f"## Cold activation (actor passivated after CHAT_IDLE_SECONDS={cold['idle_seconds']}, zero-latency LLM)",
        "",
        "| stored messages | first token, cold p50 / max ms | first token, warm p50 ms |",
        "| --- | --- | --- |",
    ]
    for key, v in cold.items():
        if key.startswith("history_"):
            lines.append(
                f"| {v['stored_messages']} | {_f(v['cold_ttft_ms']['p50'])} / {_f(v['cold_ttft_ms']['max'])} "
                f"| {_f(v['warm_ttft_ms']['p50'])} |"
            )
    mem = results["memory"]
    lines += [
        "",
        f"## Memory (MAX_LIVE_CHATS: {mem['max_live_chats_setting']})",
        "",
        "| live chats | node RSS MB | actor RSS mean / max MB | actor USS mean MB | idle Ray worker RSS MB "
        "| idle actors' CPU (cores) | activations/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in mem["points"]:
        a = p["actor_rss_mb"] or {}
        lines.append(
            f"| {p['live_chats']} | {_f(p['node_rss_mb'], 0)} | {_f(a.get('mean'))} / {_f(a.get('max'))} "
            f"| {_f(a.get('uss_mean'))} | {_f(p.get('idle_ray_worker_rss_mb'))} "
            f"| {_f(p.get('idle_actors_cpu_cores'), 2)} | {_f(p.get('activations_per_s'))} |"
        )
    ray, db = results["ceiling"]["ray"], results["ceiling"]["mariadb"]
    lines += [
        "",
        "## This machine's ceiling (same run)",
        "",
        *_ratios(results),
        f"- Ray no-op actor call: round trip p50 {ray['round_trip']['p50_ms']:.2f} ms; {ray['calls_per_s_one_actor']:,.0f} "
        f"calls/s on one actor, {ray['calls_per_s_many_actors']:,.0f} calls/s over {ray['actors']} actors; "
        f"a new no-op actor's first reply {ray['new_actor_first_reply']['p50_ms']:,.0f} ms (p50 of 3).",
        f"- MariaDB INSERT + COMMIT: round trip p50 {db['insert_commit']['p50_ms']:.2f} ms; "
        f"{db['commits_per_s_8_connections']:,.0f} commits/s over 8 connections.",
    ]
    return lines


def _ratios(results: dict[str, Any]) -> list[str]:
    """The service's figures as shares of what this machine allows."""
    ray, db = results["ceiling"]["ray"], results["ceiling"]["mariadb"]
    peak = _peak(_rows(results, "throughput", "grpc_v1"))
    calls = peak["turns_per_s"] * RAY_CALLS_PER_TURN
    commits = peak["turns_per_s"] * 2  # the user message, then the answer: one transaction each
    single = min(_rows(results, "overhead", "grpc_v1"), key=lambda r: r["concurrency"])
    floor = ray["round_trip"]["p50_ms"] + db["insert_commit"]["p50_ms"]
    return [
        f"- gRPC v1 at its peak ({peak['turns_per_s']:.0f} turns/s, {peak['concurrency']} chats) makes {calls:.0f} Ray "
        f"calls/s, {calls / ray['calls_per_s']:.0%} of the no-op ceiling, and {commits:.0f} commits/s, "
        f"{commits / db['commits_per_s_8_connections']:.0%} of the commit ceiling.",
        f"- Before the first token a turn needs at least one Ray round trip and one commit (begin_turn): "
        f"{floor:.1f} ms here; the measured TTFT overhead at {single['concurrency']} chat(s) is "
        f"{single['overhead_ttft_ms']['p50']:.1f} ms (p50), {single['overhead_ttft_ms']['p50'] / floor:.1f}x that floor.",
    ]


def _nan(value: float | None) -> float:
    """A phase in which no turn finished has no percentiles: a gap in the chart."""
    return float("nan") if value is None else value


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = results["meta"]["config"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    for (name, rows), color in zip(_series(results, "overhead"), plt.get_cmap("tab10").colors, strict=False):
        xs = [r["concurrency"] for r in rows]
        for q, style in (("p50", "-"), ("p99", "--")):
            axes[0].plot(
                xs,
                [_nan(r["ttft_ms"].get(q)) for r in rows],
                style,
                marker="o",
                color=color,
                label=f"{name} {q}",
            )
        axes[1].plot(
            xs,
            [_nan(r["overhead_ttft_ms"].get("p50")) for r in rows],
            "-",
            marker="o",
            color=color,
            label=name,
        )
    for (name, rows), color in zip(
        _series(results, "throughput"), plt.get_cmap("tab10").colors, strict=False
    ):
        axes[2].plot(
            [r["concurrency"] for r in rows],
            [r["turns_per_s"] for r in rows],
            marker="o",
            color=color,
            label=name,
        )
    llm = cfg["overhead_llm"]
    axes[0].set_title(f"time to first token (LLM ttft {llm['ttft'] * 1000:.0f} ms)")
    axes[0].set_ylabel("ms (log)")
    axes[0].set_yscale("log")
    axes[1].set_title("TTFT overhead p50 (measured − LLM's own)")
    axes[1].set_ylabel("ms (log)")
    axes[1].set_yscale("symlog", linthresh=1)
    axes[2].set_title("turns/s, zero-latency LLM")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("concurrent chats")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rewrite(out: Path) -> list[Path]:
    """Judge and render an earlier run's results.json again (after a change to the report)."""
    return write(json.loads((out / "results.json").read_text()), out)


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["targets"] = judge(results)
    paths = [out / "results.json", out / "results.md", out / "latency.png"]
    paths[0].write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    paths[1].write_text(markdown(results))
    chart(results, paths[2])
    return paths
