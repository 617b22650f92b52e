"""placements.json -> placements.md: the two placements side by side, the baseline, the scale run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _ms(spread: dict[str, float], q: str = "p50") -> str:
    value = spread.get(q)
    return "-" if value is None else f"{value:.1f}"


def _cpu(row: dict[str, Any]) -> str:
    service = row["cpu_ms_per_turn"]["service"]
    return "-" if service is None else f"{service:.1f}"


def _llm(row: dict[str, Any]) -> str:
    llm = row["llm"]
    if not llm["ttft"] and not llm["token_delay"]:
        return f"zero latency, {llm['words']} words"
    return f"{llm['ttft'] * 1000:.0f} ms + {llm['words']} x {llm['token_delay'] * 1000:.0f} ms"


def phase_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| concurrent chats | LLM | target | turns/s | TTFT p50 ms | TTFT p99 ms | TTFT overhead p50 ms | service CPU ms/turn | errors |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [r | {"label": p} for p, out in results["placements"].items() for r in out["phases"]]
    rows += [
        r | {"label": r["target"] if r["target"] == "direct" else f"baseline (history {r['history']})"}
        for r in results["baseline"]
    ]
    for r in sorted(rows, key=lambda r: (r["concurrency"], r["llm"]["words"])):
        lines.append(
            f"| {r['concurrency']} | {_llm(r)} | {r['label']} | {r['turns_per_s']:.1f} | "
            f"{_ms(r['ttft_ms'])} | {_ms(r['ttft_ms'], 'p99')} | {_ms(r['overhead_ttft_ms'])} | {_cpu(r)} | "
            f"{sum((r['errors'] or {}).values())} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# Placements: actor and hosted side by side",
        "",
        f"Run {meta['when']} on {meta['machine']['cpus']} CPUs, {meta['machine']['memory_gib']} GiB "
        f"(load average at start {meta['machine']['load_average_at_start'][0]:.1f}); "
        f"{meta['elapsed_s']:.0f} s in all{' (smoke preset: the numbers mean nothing)' if meta['smoke'] else ''}.",
        "Every phase over gRPC v1, each chat with a stored history of "
        f"{meta['config']['history']} messages; the stateless baseline and the LLM alone (direct) as references.",
        "",
        "## Turns",
        "",
        *phase_table(results),
        "",
        "## New chats (users starting a chat at the same moment, zero-latency LLM)",
        "",
        "| placement | users x rounds | first token p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for p, o in results["placements"].items():
        n = o["new_chats"]
        out.append(
            f"| {p} | {n['users']} x {n['rounds']} | {_ms(n['ttft_ms'])} | {_ms(n['ttft_ms'], 'p99')} | {_ms(n['ttft_ms'], 'max')} |"
        )
    out += ["", "## Memory per live chat (the node's MemAvailable drop / live chats)", ""]
    for p, o in results["placements"].items():
        out.append(f"- {p}: {o['memory_per_live_chat_mb']:.2f} MB")
    s = results["scale"]
    out += [
        "",
        f"## Hosted at {s['live_chats']} live chats ({s['stored_messages_per_chat']} stored messages each)",
        "",
        f"- activated at {s['activations_per_s']:.0f} chats/s (one turn each, 16 at a time)",
        f"- memory per live chat: {s['memory_per_live_chat_mb'] * 1024:.0f} KB; hosts' RSS "
        + ", ".join(f"{m:.0f} MB" for m in s["host_rss_mb"]),
        f"- database connections: {s['connections_before']} before, {s['connections_peak']} at most while "
        f"activating, of max_connections {s['max_connections']}",
        f"- hosts idle: {s['host_idle_cpu_percent']:.2f}% of a core each",
        f"- cold first token of a {s['cold_history']}-message chat: p50 {_ms(s['cold_ttft_ms'])} ms "
        f"(warm {_ms(s['warm_ttft_ms'])} ms)",
        "",
    ]
    return "\n".join(out)


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data, md = out / "placements.json", out / "placements.md"
    data.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md.write_text(render(results))
    return [data, md]
