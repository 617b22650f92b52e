"""`python -m tests.bench [--smoke] [--out DIR] [--concurrency 1,10,50,200] ...`: run and report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from tests.bench.config import BenchConfig, smoke


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="Benchmark chatservice serve (gRPC v1, gRPC ChatStream, HTTP SSE) against a stateless "
        "baseline and this machine's Ray and MariaDB ceilings; writes results.json, results.md and latency.png.",
    )
    parser.add_argument("--smoke", action="store_true", help="seconds and small numbers (what CI runs)")
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: render --out's results.json again"
    )
    parser.add_argument("--out", type=Path, help="directory for the report [default: tests/bench/results]")
    parser.add_argument("--concurrency", type=_ints, help="concurrent chats per phase, e.g. 1,10,50,200")
    parser.add_argument("--duration", type=float, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, help="seconds of each phase before measuring")
    parser.add_argument("--history", type=int, help="stored messages of the service's chats")
    parser.add_argument(
        "--database-url",
        help="MariaDB/MySQL for the run; its database is dropped and re-created "
        "[default: TEST_DATABASE_URL's server, database chatservice_bench]",
    )
    args = parser.parse_args(argv)
    cfg = smoke() if args.smoke else BenchConfig()
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("smoke", "report_only")}
    if args.report_only:
        given["report_only"] = True
    return replace(cfg, **given)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    from tests.bench.report import rewrite, write

    if cfg.report_only:
        paths = rewrite(cfg.out)
        results = json.loads((cfg.out / "results.json").read_text())
    else:
        from tests.bench.runner import Bench

        results = Bench(cfg).run()
        paths = write(results, cfg.out)
    for path in paths:
        print(path)
    for t in results["targets"]:
        print(f"{'met    ' if t['met'] else 'MISSED '} {t['target']}: {t['measured']} (limit {t['limit']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
