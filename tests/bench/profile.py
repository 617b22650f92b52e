"""Where a turn's CPU goes: py-spy on the served process and the conversations' processes under load.

`python -m tests.bench.profile [--placement hosted] [--seconds 15]` writes profile-<placement>.md: for
each process, the functions most often on CPU (share of its busy samples, inclusive and self).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from tests.bench.cluster import CONVERSATION_CLASS, HOST_CLASS, ProcessTree, live_actors
from tests.bench.config import FIXED_LATENCY, RESULTS, ZERO_LATENCY, BenchConfig
from tests.bench.placements import Placements, Plan
from tests.bench.runner import log, served

CHATS = 10
SHOWN = 25


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [
        str(py_spy),
        "record",
        "-p",
        str(pid),
        "-d",
        str(int(seconds)),
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(raw: Path, title: str) -> list[str]:
    """The functions on CPU in most samples: inclusive (anywhere in the stack) and self (on top)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split("/")[-1] for f in stack.split(";") if f]
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    lines = [
        f"### {title}: {total} busy samples at 200/s",
        "",
        "| inclusive % | self % | function (file:line) |",
    ]
    lines.append("| ---: | ---: | --- |")
    for frame, n in inclusive.most_common(SHOWN * 3)[: SHOWN * 3]:
        if n / max(total, 1) < 0.02:
            break
        lines.append(f"| {100 * n / total:.1f} | {100 * own[frame] / total:.1f} | `{frame}` |")
    lines += ["", "Most self time:", ""]
    lines += [f"- {100 * n / total:.1f}% `{frame}`" for frame, n in own.most_common(15)]
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile", description=__doc__)
    parser.add_argument("--placement", choices=("actor", "hosted"), default="hosted")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--fixed", action="store_true", help="the 50 ms + 40 x 5 ms LLM, not the zero-latency one"
    )
    args = parser.parse_args(argv)
    cfg = replace(BenchConfig(), concurrency=(CHATS,), duration=args.seconds + 4, warmup=2.0)
    llm = FIXED_LATENCY if args.fixed else ZERO_LATENCY
    p = Placements(Plan(cfg, levels=(CHATS,)))
    b = p.bench
    tmp = Path(tempfile.mkdtemp(prefix="profile-"))
    sections: list[str] = []
    with b.running():
        b.seed()
        with served(p.env(args.placement, CHATS + 10)) as serve:
            assert serve.proc is not None and b.head is not None and b.head.proc is not None
            urls = b.urls(serve)
            b.touch("grpc_v1", b.pool[:CHATS], urls, CHATS)
            kind = HOST_CLASS if args.placement == "hosted" else CONVERSATION_CLASS
            conversations = live_actors(b.head.address, kind)[:2]
            targets = [("gateway", serve.proc.pid), *conversations]
            service = ProcessTree([serve.proc.pid, b.head.proc.pid])
            rows: list[dict[str, object]] = []
            load = threading.Thread(
                target=lambda: rows.append(b.phase("grpc_v1", b.pool[:CHATS], CHATS, llm, urls, service))
            )
            load.start()
            recorders = [
                (name, record(pid, args.seconds, tmp / f"{i}.txt")) for i, (name, pid) in enumerate(targets)
            ]
            for _, proc in recorders:
                proc.wait()
            load.join()
            row = rows[0]
            log(f"profiled {row['turns']} turns, service CPU {row['cpu_ms_per_turn']['service']:.1f} ms/turn")
            by_process = row["cpu_ms_per_turn"]["service_by_process"]  # type: ignore[index]
            sections = [
                f"# Where a turn's CPU goes ({args.placement} placement, {CHATS} chats, LLM {llm.as_dict()})",
                "",
                f"{row['turns_per_s']:.0f} turns/s; service CPU {row['cpu_ms_per_turn']['service']:.2f} ms a turn: "  # type: ignore[index]
                + ", ".join(f"{k} {v:.2f}" for k, v in sorted(by_process.items(), key=lambda kv: -kv[1])),
                "",
            ]
            for i, (name, _) in enumerate(targets):
                sections += summarize(tmp / f"{i}.txt", name)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"profile-{args.placement}.md"
    out.write_text("\n".join(sections))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
