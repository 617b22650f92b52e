"""One benchmark run: database, Ray, test LLM, served process and baseline up; then phase by phase."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

import asyncmy
import psutil

from gateways.llm.tokenizer import tokenizer_for
from gateways.settings import Settings
from store import DatabaseURL
from store.errors import Unavailable
from store.migrate import migrate
from tests.bench import baseline, prefix
from tests.bench.cluster import RAY_ENV, ProcessTree, RayHead, live_actors, rss_of
from tests.bench.config import INTERFACES, RAY_CALLS_PER_TURN, BenchConfig
from tests.bench.llm import BenchLLM, Profile
from tests.bench.processes import Baseline, Driver
from tests.bench.stats import spread, summarize
from tests.bench.workload import chat_ids, history, seed_chats
from tests.serve_process import ServeProcess

MB = 1024 * 1024
ACTOR_BUDGET_MB = 64  # what a live conversation actor takes unshared (about 52 MB), with room to spare
CONNECTION_MARGIN = 30  # database connections left for whoever else uses the server


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def fresh_database(url: str) -> None:
    """Drop and create the benchmark's database, so no earlier run's rows weigh on this one."""
    u = DatabaseURL.parse(url)
    conn = await asyncmy.connect(host=u.host, port=u.port, user=u.user, password=u.password, autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS `{u.database}`")
        await cur.execute(f"CREATE DATABASE `{u.database}` CHARACTER SET utf8mb4")
    conn.close()
    await migrate(u)
    await baseline.create_tables(url)


def _title(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()[:1])
    except psutil.Error:
        return ""


def idle_cpu_percent(pids: Sequence[int], seconds: float) -> float:
    """Mean CPU percent of the processes over `seconds` (while nothing is asked of them)."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append((psutil.Process(pid), sum(psutil.Process(pid).cpu_times()[:2])))
    time.sleep(seconds)
    used = []
    for p, before in procs:
        with contextlib.suppress(psutil.Error):
            used.append(sum(p.cpu_times()[:2]) - before)
    return 100 * statistics.fmean(used) / seconds if used else 0.0


@contextlib.contextmanager
def served(env: dict[str, str]) -> Iterator[ServeProcess]:
    """`chatservice serve`, given time to start on a busy machine."""
    serve = ServeProcess(env).start(timeout=240)
    try:
        yield serve
    finally:
        serve.stop()


async def connections(url: str) -> tuple[int, int]:
    """The database server's max_connections, and how many are open now."""
    u = DatabaseURL.parse(url)
    conn = await asyncmy.connect(host=u.host, port=u.port, user=u.user, password=u.password, autocommit=True)
    async with conn.cursor() as cur:
        await cur.execute("SELECT @@max_connections")
        most = (await cur.fetchone())[0]
        await cur.execute("SHOW STATUS LIKE 'Threads_connected'")
        used = (await cur.fetchone())[1]
    conn.close()
    return int(most), int(used)


class Bench:
    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.results: dict[str, Any] = {}
        self.head: RayHead | None = None
        self.llm = BenchLLM()
        self.driver: Driver | None = None
        model = "gpt-4o-mini"
        # A window that holds the seeded history and little more: every turn then evicts, the
        # steady state of a long chat.
        self.context_tokens = tokenizer_for(model).count_messages(history(cfg.history)) + cfg.max_tokens + 64
        self.pool = chat_ids("pool", cfg.pool)
        self.skipped: list[int] = []

    # -- set-up ----------------------------------------------------------------------------

    def serve_env(self, idle_seconds: float) -> dict[str, str]:
        assert self.head is not None
        return {
            **RAY_ENV,
            "DATABASE_URL": self.cfg.database_url,
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": self.llm.base_url,
            "AUTO_TITLE": "0",
            "RAY_ADDRESS": self.head.address,
            "CHAT_IDLE_SECONDS": str(idle_seconds),
            # Every chat of the pool stays live, and the load is not a user's to rate-limit.
            "MAX_LIVE_CHATS": str(len(self.pool)),
            "CHAT_TURNS_PER_MINUTE": "0",
            "USER_TURNS_PER_MINUTE": "0",
            "MODEL_MAX_TOKENS": str(self.context_tokens),
            "MAX_TOKENS": str(self.cfg.max_tokens),
            "EVICT_TO": "1.0",  # every turn of a full chat evicts (the prefix step sets its own)
            "LOG_LEVEL": "WARNING",
            "GRPC_GRACE_SECONDS": "1",  # the harness stops it only when no stream is running
        }

    def settings(self, idle_seconds: float) -> Settings:
        return Settings.from_env(self.serve_env(idle_seconds))

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        os.environ.update(RAY_ENV)
        with contextlib.ExitStack() as stack:
            log("database, Ray head, test LLM, driver")
            asyncio.run(fresh_database(self.cfg.database_url))
            self.head = RayHead().start()
            stack.callback(lambda: self.head.stop() if self.head else None)  # the head of the moment
            self.llm.start()
            stack.callback(self.llm.stop)
            self.driver = Driver()
            stack.callback(self.driver.close)
            yield

    def urls(self, serve: ServeProcess | None = None, base: Baseline | None = None) -> dict[str, str]:
        urls = {"llm": self.llm.base_url}
        if serve is not None:
            urls |= {"grpc": f"127.0.0.1:{serve.grpc_port}", "http": serve.url}
        if base is not None:
            urls["baseline"] = base.url
        return urls

    # -- measuring -------------------------------------------------------------------------

    def _llm_cpu(self) -> float:
        tid = self.llm._thread.native_id if self.llm._thread else None
        for t in psutil.Process().threads():
            if t.id == tid:
                return float(t.user_time + t.system_time)
        return 0.0

    def phase(
        self,
        target: str,
        chats: Sequence[tuple[str, str]],
        concurrency: int,
        profile: Profile,
        urls: dict[str, str],
        service: ProcessTree | None,
        **extra: Any,
    ) -> dict[str, Any]:
        assert self.driver is not None
        self.llm.configure(profile)
        driver_tree = ProcessTree([self.driver.pid])
        marks: dict[str, tuple[dict[str, float], float, float]] = {}

        def mark(name: str) -> None:
            kinds = service.cpu_by_kind() if service else {}
            marks[name] = (kinds, self._llm_cpu(), driver_tree.usage().cpu_seconds)

        cmd = {
            "cmd": "phase",
            "target": target,
            "urls": urls,
            "chats": [list(c) for c in chats],
            "concurrency": concurrency,
            "warmup": self.cfg.warmup,
            "duration": self.cfg.duration,
            "direct_history": self.cfg.history,
        }
        summary = summarize(self.driver.run(cmd, mark), profile)
        turns = max(1, summary["turns"])
        start, end = marks["window_start"], marks["window_end"]
        by_kind = {k: (v - start[0].get(k, 0.0)) * 1000 / turns for k, v in end[0].items()}
        service_ms = sum(by_kind.values()) if service else None
        summary["cpu_ms_per_turn"] = {
            "service": service_ms,
            "service_by_process": by_kind,
            "test_llm": (end[1] - start[1]) * 1000 / turns,
            "driver": (end[2] - start[2]) * 1000 / turns,
        }
        summary["cpu_cores_busy_service"] = (
            service_ms * summary["turns"] / 1000 / self.cfg.duration if service_ms is not None else None
        )
        row = {"target": target, "concurrency": concurrency, **extra, **summary}
        log(
            f"{target:<12} c={concurrency:<4} {summary['turns_per_s']:8.1f} turns/s  ttft p50 "
            f"{summary['ttft_ms'].get('p50', float('nan')):7.1f} ms  p99 {summary['ttft_ms'].get('p99', float('nan')):7.1f} ms"
            f"  errors {summary['errors'] or 0}"
        )
        return row

    def touch(
        self, target: str, chats: Sequence[tuple[str, str]], urls: dict[str, str], concurrency: int
    ) -> list[list[Any]]:
        assert self.driver is not None
        cmd = {
            "cmd": "touch",
            "target": target,
            "urls": urls,
            "chats": [list(c) for c in chats],
            "concurrency": concurrency,
        }
        turns: list[list[Any]] = self.driver.run(cmd)["turns"]
        failed = [t[4] for t in turns if t[4] is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(turns)} turns failed: {sorted(set(failed))}")
        return turns

    def wait_actors_gone(self, names: set[str], timeout: float = 120.0) -> float:
        assert self.head is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            alive = {n for n, _ in live_actors(self.head.address)} & names
            if not alive:
                return time.monotonic() - started
            time.sleep(0.25)
        raise RuntimeError(f"{len(alive)} actors still alive after {timeout} s")

    # -- the run ---------------------------------------------------------------------------

    def fit_to_machine(self) -> None:
        """Drop concurrency levels whose live actors this machine cannot hold beside what else runs.

        Each live chat is a process (memory) holding one database connection (DESIGN.md, "A conversation's lifecycle"), and
        the database server is shared: a run must not take every connection it allows.
        """
        memory = int((psutil.virtual_memory().available - 3 * 1024 * MB) / (ACTOR_BUDGET_MB * MB))
        most, used = asyncio.run(connections(self.cfg.database_url))
        spare = most - used - CONNECTION_MARGIN - self.cfg.baseline_pool - self.cfg.ceiling_actors - 4
        room = min(memory, spare)
        levels = tuple(c for c in self.cfg.concurrency if c <= room) or (min(self.cfg.concurrency),)
        if levels != self.cfg.concurrency:
            log(
                f"room for about {room} live chats only ({memory} by memory, {spare} by the database's "
                f"max_connections={most} with {used} in use): concurrency {levels}, not {self.cfg.concurrency}"
            )
            self.skipped = [c for c in self.cfg.concurrency if c not in levels]
            self.cfg = replace(self.cfg, concurrency=levels)
            self.pool = self.pool[: self.cfg.pool]

    def run(self) -> dict[str, Any]:
        self.fit_to_machine()
        cfg = self.cfg
        started = time.monotonic()
        with self.running():
            self.results["meta"] = self.meta()
            self.seed()
            self.results["cold_activation"] = self.cold_activation()
            settings = self.settings(3600)
            with served(self.serve_env(3600)) as serve:
                assert self.head is not None
                service = ProcessTree([serve.proc.pid, self.head.proc.pid])  # type: ignore[union-attr]
                self.results["ceiling"] = self.ceiling()
                base = Baseline(
                    cfg.database_url,
                    self.llm.base_url,
                    self.context_tokens,
                    cfg.max_tokens,
                    cfg.baseline_pool,
                )
                try:
                    # Its first request loads the tokenizer (the service's did at its first turn).
                    self.touch(
                        "baseline", chat_ids(f"base{cfg.baseline_histories[0]}", 1), self.urls(base=base), 1
                    )
                    # The references first, while no conversation actor is alive to take CPU from them.
                    throughput = [
                        r for c in cfg.concurrency for r in self.references(c, cfg.throughput_llm, base)
                    ]
                    overhead = [
                        r for c in cfg.concurrency for r in self.references(c, cfg.overhead_llm, base)
                    ]
                    self.by_live_chats(serve, service, settings.live_chats_cap)
                    self.results["throughput"] += throughput
                    self.results["overhead"] += overhead
                finally:
                    base.close()
                log("stopping")
            self.results["prefix_cache"] = self.prefix_cache()
        self.results["meta"]["elapsed_s"] = time.monotonic() - started
        self.results["meta"]["concurrency_skipped"] = self.skipped
        self.results["meta"]["machine"]["load_average_at_end"] = os.getloadavg()
        return self.results

    def meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "smoke": cfg.smoke,
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "python": platform.python_version(),
                "platform": platform.platform(),
                # The machine may be shared: a load far above its CPUs makes every figure pessimistic.
                "load_average_at_start": os.getloadavg(),
            },
            "config": {
                **{
                    k: v
                    for k, v in asdict(cfg).items()
                    if k not in ("out", "database_url", "throughput_llm", "overhead_llm")
                },
                "throughput_llm": cfg.throughput_llm.as_dict(),
                "overhead_llm": cfg.overhead_llm.as_dict(),
                "context_tokens": self.context_tokens,
                "ray_calls_per_turn": RAY_CALLS_PER_TURN,
            },
        }

    def seed(self) -> None:
        cfg = self.cfg
        log(f"seeding {cfg.pool} chats of {cfg.history} messages, cold chats, baseline chats")
        settings = self.settings(3600)
        # Cold chats keep all their messages in the window: activation then rebuilds all of them.
        big = replace(settings.default_params, context_tokens=128_000)

        async def all_seeds() -> None:
            await seed_chats(
                DatabaseURL.parse(cfg.database_url), settings.default_params, self.pool, cfg.history
            )
            for n in cfg.cold_histories:
                await seed_chats(
                    DatabaseURL.parse(cfg.database_url), big, chat_ids(f"cold{n}", cfg.cold_chats), n
                )
            for h in cfg.baseline_histories:
                await baseline.seed(cfg.database_url, [c for _, c in chat_ids(f"base{h}", cfg.pool)], h)

        for attempt in (1, 2, 3):
            try:
                asyncio.run(all_seeds())
                return
            except Unavailable:
                # A busy shared server can miss the driver's 5 s connect timeout: start over.
                if attempt == 3:
                    raise
                log("the database did not answer in time; seeding again")
                asyncio.run(fresh_database(cfg.database_url))

    def cold_activation(self) -> dict[str, Any]:
        """First token on chats whose actor passivated, against a warm turn on the same chats."""
        cfg = self.cfg
        log(f"cold activation (CHAT_IDLE_SECONDS={cfg.idle_seconds})")
        out: dict[str, Any] = {"idle_seconds": cfg.idle_seconds, "llm": cfg.throughput_llm.as_dict()}
        self.llm.configure(cfg.throughput_llm)
        with served(self.serve_env(cfg.idle_seconds)) as serve:
            urls = self.urls(serve)
            for n in cfg.cold_histories:
                chats = chat_ids(f"cold{n}", cfg.cold_chats)
                self.touch("grpc_v1", chats, urls, 1)  # activate...
                waited = self.wait_actors_gone({f"chat:{c}" for _, c in chats})  # ...and let them passivate
                cold = self.touch("grpc_v1", chats, urls, 1)
                warm = self.touch("grpc_v1", chats, urls, 1)
                out[f"history_{n}"] = {
                    "stored_messages": n,
                    "passivated_after_s": waited,
                    "cold_ttft_ms": spread([t[1] - t[0] for t in cold]),
                    "warm_ttft_ms": spread([t[1] - t[0] for t in warm]),
                }
                log(
                    f"cold {n:>4} messages: first token {out[f'history_{n}']['cold_ttft_ms']['p50']:.0f} ms (p50)"
                )
        self.wait_actors_gone(
            {f"chat:{c}" for n in cfg.cold_histories for _, c in chat_ids(f"cold{n}", cfg.cold_chats)}
        )
        return out

    def prefix_cache(self) -> dict[str, Any]:
        """Prefix-stable turns at each EVICT_TO setting, each in a served process of its own."""
        cfg = self.cfg
        log(f"prefix-stable turns: EVICT_TO {cfg.prefix_levels}, {cfg.prefix_turns} turns each")
        params = self.settings(3600).default_params
        env = self.serve_env(3600)
        return prefix.measure(
            cfg.prefix_levels, env, params, cfg.database_url, cfg.history, cfg.prefix_turns, log
        )

    def ceiling(self) -> dict[str, Any]:
        assert self.driver is not None and self.head is not None
        log("machine ceiling: Ray no-op calls, MariaDB insert+commit")
        cmd = {
            "cmd": "ceiling",
            "ray_address": self.head.address,
            "database_url": self.cfg.database_url,
            "seconds": self.cfg.ceiling_seconds,
            "actors": self.cfg.ceiling_actors,
        }
        result = self.driver.run(cmd)
        return {"ray": result["ray"], "mariadb": result["mariadb"]}

    def by_live_chats(self, serve: ServeProcess, service: ProcessTree, max_live: int | None) -> None:
        """Activate chats step by step; at each step record memory, and run the phases of that level.

        At concurrency C the node holds C live chats (no idle actors beside them), and the memory
        points are taken at 10, 100 and MAX_LIVE_CHATS live chats, and at every level on the way.
        """
        cfg = self.cfg
        top = min(max_live or cfg.pool, cfg.memory_max, cfg.pool)
        steps = sorted({c for c in (*cfg.memory_counts, top, *cfg.concurrency) if c <= cfg.pool})
        points = [{"live_chats": 0, "node_rss_mb": service.usage().rss_bytes / MB, "actor_rss_mb": None}]
        throughput: list[dict[str, Any]] = []
        overhead: list[dict[str, Any]] = []
        activated = 0
        for count in steps:
            points.append(self.memory_point(serve, service, activated, count))
            activated = count
            if count in cfg.concurrency:
                throughput += self.phases(count, cfg.throughput_llm, serve, service)
                overhead += self.phases(count, cfg.overhead_llm, serve, service)
        self.results["memory"] = {"max_live_chats_setting": max_live, "points": points}
        self.results["throughput"] = throughput
        self.results["overhead"] = overhead

    def memory_point(self, serve: ServeProcess, service: ProcessTree, have: int, want: int) -> dict[str, Any]:
        """Activate chats have..want (one turn each), then the RSS of each live actor and of the node."""
        assert self.head is not None
        t = time.monotonic()
        self.touch("grpc_v1", self.pool[have:want], self.urls(serve), 8)
        rate = (want - have) / (time.monotonic() - t)
        time.sleep(1.0)
        actors = [pid for name, pid in live_actors(self.head.address) if name.startswith("chat:")]
        mem = rss_of(actors)
        usage = service.usage()
        idle_cpu = idle_cpu_percent(actors, 3.0)
        point = {
            "live_chats": len(actors),
            "activations_per_s": rate,
            "node_rss_mb": usage.rss_bytes / MB,
            "node_processes": usage.processes,
            "actor_rss_mb": {
                "mean": statistics.fmean(m["rss"] for m in mem) / MB,
                "max": max(m["rss"] for m in mem) / MB,
                "uss_mean": statistics.fmean(m["uss"] for m in mem) / MB,
                "pss_mean": statistics.fmean(m["pss"] for m in mem) / MB,
            },
            "idle_ray_worker_rss_mb": self.idle_worker_rss(service),
            # A live actor with nothing to do still wakes up: its share of a CPU, while no turn runs.
            "idle_actor_cpu_percent": idle_cpu,
            "idle_actors_cpu_cores": idle_cpu * len(actors) / 100,
        }
        log(
            f"memory: {len(actors)} live chats, node {usage.rss_bytes / MB:.0f} MB, "
            f"actor RSS {point['actor_rss_mb']['mean']:.1f} MB"  # type: ignore[index]
        )
        return point

    @staticmethod
    def idle_worker_rss(service: ProcessTree) -> float | None:
        """RSS of a Ray worker that runs nothing: the floor under any actor's footprint."""
        idle = [p.pid for p in service.processes() if _title(p).startswith("ray::IDLE")]
        mem = rss_of(idle)
        return statistics.fmean(m["rss"] for m in mem) / MB if mem else None

    def phases(
        self, c: int, profile: Profile, serve: ServeProcess, service: ProcessTree
    ) -> list[dict[str, Any]]:
        """Every interface of the service at concurrency c, on its c live chats."""
        log(
            f"c={c}: LLM ttft {profile.ttft * 1000:.0f} ms, {profile.token_delay * 1000:.0f} ms/token, {profile.words} words"
        )
        ours = self.pool[:c]
        urls = self.urls(serve)
        return [self.phase(t, ours, c, profile, urls, service, history=self.cfg.history) for t in INTERFACES]

    def references(self, c: int, profile: Profile, base: Baseline) -> list[dict[str, Any]]:
        """The test LLM alone and the stateless baseline at concurrency c."""
        cfg = self.cfg
        log(f"c={c} references: LLM ttft {profile.ttft * 1000:.0f} ms, {profile.words} words")
        urls = self.urls(base=base)
        rows = [self.phase("direct", self.pool[:c], c, profile, urls, None, history=cfg.history)]
        for h in cfg.baseline_histories:
            # The baseline has no per-chat cost, so it spreads over the whole pool: every chat
            # gets few turns and stays near h stored messages, reset to h before each phase.
            chats = chat_ids(f"base{h}", cfg.pool)
            asyncio.run(baseline.reset(cfg.database_url, [ch for _, ch in chats], h))
            rows.append(self.phase("baseline", chats, c, profile, urls, ProcessTree([base.pid]), history=h))
        return rows
