"""Latency benchmark: from a 1m candle's close to its paper order recorded, under `dagster dev` in replay mode.

The whole live path runs as in `make demo`: the local stack (SeaweedFS, tansu, the replay
server) on free loopback ports with a temporary COIN_HOME, and `dagster dev` (webserver, daemon,
code server, one process per run) started as `coin dev` starts it. `live_1m_schedule` runs
`ingest_1m` at every minute close; `candidates_1m` records the strategy's signals in ClickHouse and
publishes them; `candidate_sensor` launches one `trade_job` run per candidate, which records the decision
(publishing buy/sell ones) and places its order; the paper broker's outcome lands in the trading store.
Runs start through the local dagster.yaml's run launcher (a fork of a process that imported the code).

Set-up: N replay symbols, 1m only, history from two days ago, one RSI(7) 45/55 reversal strategy
(measured on replay candles: about 1.35 candidates per minute over 4 symbols; each RSI cross gives
an entry and an exit, and an exit without a position ends as `no_position`), entries acted on at any
confidence, no cooldown, wide notional limits, hot-store retention 1 day. The history is backfilled
in process before the UI starts; that backfill publishes its candidates to a side topic, so the
sensors start with an empty backlog and every candidate they see is a live one.

Measured: the candidates whose candle closed at or after the first tick the daemon ran, in close
order, until --candidates of them reached a final order outcome (filled, rejected, no_position) with
every earlier one resolved (a held decision or a failed run resolves a candidate without an order).
Per candidate: candle close → order recorded (the order's or refusal's created_at), and the stages
close → published → decided → recorded, each split by the Dagster run records into waiting for the
schedule/sensor tick, run launch (run created → RUN_START) and the run's own work.

Reference: Dagster's run-launch cost in the same instance (run created → RUN_START, median over the
runs of the measurement: queued-run coordinator, then a fresh process that loads the code location).
Goal: p95 of candle close → order recorded ≤ 15 s (stretch 10 s) and median ≤ 10 s, over ≥ 40 candidates.
Only the JSON goes to stdout; progress to stderr.

    python bench/latency.py                               # 40 candidates, about 25 minutes
    python bench/latency.py --candidates 3 --timeout 600  # a quick check of the bench itself
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from report import emit  # bench/report.py, beside this script

GOAL_P95_S = 15.0
STRETCH_P95_S = 10.0
GOAL_P50_S = 10.0
INTERVAL = "1m"
INGEST_JOB = f"ingest_{INTERVAL}"
SCHEDULE = f"live_{INTERVAL}_schedule"
TRADE_JOB = "trade_job"
JOBS = (INGEST_JOB, TRADE_JOB)
STRATEGY_NAME = "rsi_latency"
BACKFILL_TOPIC_SUFFIX = ".backfill"
HISTORY_DAYS = 2  # history_start = today - 2 days
POLL_S = 5.0
DAGSTER_READY_TIMEOUT_S = 240.0
FIRST_TICK_TIMEOUT_S = 180.0
DAGSTER_STOP_TIMEOUT_S = 60.0
KILL_GRACE_S = 10.0
FINAL_OUTCOMES = ("filled", "rejected", "no_position")
# Dagster's console logger writes to stderr; keep the in-process backfill to problems.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LOG_TAIL_LINES = 40

_T0 = time.monotonic()


class BenchError(RuntimeError):
    """The bench could not run; the message says what failed (with a log tail where there is one)."""


def log(message: str) -> None:
    print(f"[latency +{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


_stopping = False


def _stop_requested(signum: int, _frame: object) -> None:
    """SIGTERM/SIGINT: leave through the finally blocks that stop dagster dev and the stack (once)."""
    global _stopping
    if _stopping:
        log(f"signal {signum} ignored: already stopping")
        return
    _stopping = True
    raise SystemExit(128 + signum)


def cleaning_up() -> None:
    """From here on a signal must not cut the clean-up short: later ones are logged and ignored."""
    global _stopping
    _stopping = True


def install_stop_handlers() -> None:
    """On SIGINT and SIGTERM both: Dagster's in-process execution maps SIGTERM onto SIGINT's handler when it
    restores its own, and a shell starts background jobs with SIGINT ignored. Called again in every wait loop."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not _stop_requested:
            signal.signal(sig, _stop_requested)


# --- statistics (pure; see coin_platform_tests/test_bench.py) ---------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Iterable[float]) -> dict[str, float | int | None]:
    """n, p50, p95 and max of `values`, rounded to milliseconds."""
    data = list(values)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "n": len(data),
        "p50": rounded(percentile(data, 50)),
        "p95": rounded(percentile(data, 95)),
        "max": rounded(max(data) if data else None),
    }


@dataclass(frozen=True)
class Trace:
    """One candidate's way to the trading store, as epoch seconds (None where a record is missing)."""

    candidate_id: str
    symbol: str
    signal: str
    outcome: str  # filled | rejected | no_position
    close: float  # the candle's close time
    recorded: float  # the order's or the refusal's created_at
    published: float | None = None  # candidate published to Kafka (ClickHouse candidates.published_at)
    decided: float | None = None  # decisions.decided_at
    decision_published: float | None = None  # decisions.published_at
    ingest_created: float | None = None  # the ingest_1m run that published the candidate
    ingest_started: float | None = None
    trade_created: float | None = None  # its trade_job run
    trade_started: float | None = None


# (name, from field, to field): consecutive stages that add up to close → recorded.
STAGES = (
    ("close_to_published", "close", "published"),
    ("published_to_decided", "published", "decided"),
    ("decided_to_recorded", "decided", "recorded"),
)
# The stages split by the Dagster run records; (name, from, to, kind).
SUBSTAGES = (
    ("schedule_tick", "close", "ingest_created", "tick_wait"),
    ("ingest_launch", "ingest_created", "ingest_started", "run_launch"),
    ("ingest_until_published", "ingest_started", "published", "run_work"),
    ("candidate_sensor", "published", "trade_created", "tick_wait"),
    ("trade_launch", "trade_created", "trade_started", "run_launch"),
    ("trade_until_decided", "trade_started", "decided", "run_work"),
    ("decision_publish", "decided", "decision_published", "run_work"),
    ("order_until_recorded", "decision_published", "recorded", "run_work"),
)
KIND_LABELS = {
    "tick_wait": "waiting for the schedule/sensor ticks that create the runs",
    "run_launch": "Dagster run launches (created → RUN_START)",
    "run_work": "the runs' own work",
}


def _between(traces: Iterable[Trace], start: str, end: str) -> list[float]:
    values = []
    for trace in traces:
        a, b = getattr(trace, start), getattr(trace, end)
        if a is not None and b is not None:
            values.append(b - a)
    return values


def latency_report(traces: Sequence[Trace]) -> dict[str, object]:
    """Close → recorded for filled orders and for every outcome, the stages and their splits (seconds)."""
    filled = [t for t in traces if t.outcome == "filled"]
    return {
        "close_to_order_recorded": {
            "filled": spread(_between(filled, "close", "recorded")),
            "all_outcomes": spread(_between(traces, "close", "recorded")),
        },
        "stages": {name: spread(_between(traces, a, b)) for name, a, b in STAGES},
        "substages": {name: spread(_between(traces, a, b)) for name, a, b, _ in SUBSTAGES},
    }


def where_time_goes(report: dict[str, object], launch_p50: float | None, cpus: int | None,
                    ingest_steps: dict[str, float | None] | None = None,
                    launch_parts: dict[str, float | None] | None = None) -> str:
    """A few sentences from `latency_report`'s medians: which kind of wait dominates."""
    total = report["close_to_order_recorded"]["all_outcomes"]
    if not total["n"]:
        return "No candidate reached an order outcome; nothing to break down."
    substages = report["substages"]
    medians = {name: substages[name]["p50"] for name, *_ in SUBSTAGES if substages[name]["p50"] is not None}
    by_kind: dict[str, float] = {}
    for name, _, _, kind in SUBSTAGES:
        if name in medians:
            by_kind[kind] = by_kind.get(kind, 0.0) + medians[name]
    parts_total = sum(by_kind.values())
    lines = [
        f"Median candle close → order recorded {total['p50']:.1f} s (p95 {total['p95']:.1f} s, n={total['n']})."
    ]
    if parts_total > 0:
        shares = ", ".join(
            f"{KIND_LABELS[kind]} {seconds:.1f} s ({100 * seconds / parts_total:.0f} %)"
            for kind, seconds in sorted(by_kind.items(), key=lambda item: -item[1])
        )
        lines.append(f"Sum of the stage medians {parts_total:.1f} s: {shares}.")
        top = sorted(medians.items(), key=lambda item: -item[1])[:3]
        lines.append("Largest stages (median): " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in top) + ".")
    steps = {key: value for key, value in (ingest_steps or {}).items() if value is not None}
    if steps:
        slowest = sorted(steps.items(), key=lambda item: -item[1])[:2]
        lines.append("Slowest ingest steps (median): " + ", ".join(f"{key} {value:.1f} s" for key, value in slowest)
                     + ".")
    if launch_p50 is not None:
        lines.append(
            f"The reference run launch (median {launch_p50:.1f} s) is paid twice on the path (ingest and trade "
            f"runs): {2 * launch_p50:.1f} s of the {GOAL_P95_S:.0f} s goal."
        )
    parts = {key: value for key, value in (launch_parts or {}).items() if value is not None}
    if parts:
        lines.append("One launch (median): " + ", ".join(f"{key} {value:.1f} s" for key, value in parts.items()) + ".")
    if cpus:
        lines.append(f"{cpus} CPU(s) shared by the webserver, daemon, code server and every run process.")
    return " ".join(lines)


# --- configuration and environment -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from coin_platform.local.replay.synthetic import DEFAULT_SYMBOLS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=40,
                        help="live candidates that must reach a final order outcome")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for them once the Dagster UI answers")
    parser.add_argument("--symbols", type=int, default=4, help=f"the first M of {len(DEFAULT_SYMBOLS)} replay symbols")
    parser.add_argument("--rsi-period", type=int, default=7)
    parser.add_argument("--oversold", type=float, default=45.0)
    parser.add_argument("--overbought", type=float, default=55.0)
    parser.add_argument("--sensor-interval", type=int, default=1,
                        help="events.sensor_interval_seconds (the platform's default is 1)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the temporary COIN_HOME (logs, instance, stores) and print its path")
    args = parser.parse_args(argv)
    if args.candidates < 1 or args.timeout <= 0:
        parser.error("--candidates and --timeout must be positive")
    if not 1 <= args.symbols <= len(DEFAULT_SYMBOLS):
        parser.error(f"--symbols must be within 1..{len(DEFAULT_SYMBOLS)}")
    args.symbol_names = DEFAULT_SYMBOLS[: args.symbols]
    return args


def pick_ports() -> dict[str, int]:
    """Free loopback ports for every local_stack key; SeaweedFS ports leave room for their gRPC ports."""
    from coin_platform.local import stack

    highest = 65535 - stack.GRPC_PORT_OFFSET
    for _ in range(100):
        seaweed = stack.SeaweedPorts.free()
        if max(seaweed.s3, seaweed.master, seaweed.volume, seaweed.filer) < highest:
            break
    else:
        raise BenchError(f"found no free SeaweedFS ports below {highest}")
    taken = set(seaweed.all_ports().values())
    ports = {"s3_port": seaweed.s3, "master_port": seaweed.master, "volume_port": seaweed.volume,
             "filer_port": seaweed.filer}
    for key in ("kafka_port", "replay_port", "dagster_port"):
        ports[key] = stack.free_port(avoid=taken)
        taken.add(ports[key])
    return ports


def platform_config(args: argparse.Namespace, ports: dict[str, int], history_start: dt.date,
                    candidates_topic: str) -> dict[str, object]:
    return {
        "symbols": list(args.symbol_names),
        "intervals": [INTERVAL],
        "history_start": history_start.isoformat(),
        "retention_days": 1,
        "local_stack": ports,
        "strategies": [{
            "name": STRATEGY_NAME,
            "kind": "rsi_reversal",
            "intervals": [INTERVAL],
            "params": {"period": args.rsi_period, "oversold": args.oversold, "overbought": args.overbought},
        }],
        "events": {"candidates_topic": candidates_topic, "sensor_interval_seconds": args.sensor_interval},
        "inference": {"min_confidence": 0.0},
        "trading": {
            "broker": "paper",
            "risk": {
                "kill_switch": False,
                "max_position_notional_usdt": 1e12,
                "daily_loss_limit_usdt": 1e12,
                "cooldown_seconds": 0,
            },
        },
    }


def bench_environ(home: Path, config: Path, ports: dict[str, int]) -> dict[str, str]:
    """Everything the settings read, explicit, so neither the caller's shell nor .env can redirect the bench."""
    from coin_platform.local import stack

    return {
        "COIN_PLATFORM_ENV": "local",
        "COIN_CONFIG": str(config),
        "COIN_HOME": str(home),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": f"http://{stack.LOOPBACK}:{ports['replay_port']}",
        "S3_ENDPOINT_URL": f"http://{stack.LOOPBACK}:{ports['s3_port']}",
        "S3_BUCKET": "coin-platform",
        "AWS_REGION": stack.DEFAULT_REGION,
        "AWS_ACCESS_KEY_ID": stack.LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.LOCAL_SECRET_KEY,
        "KAFKA_BOOTSTRAP_SERVERS": f"{stack.LOOPBACK}:{ports['kafka_port']}",
        "LIVE_TRADING": "0",
    }


def backfill(settings, first: dt.date, last: dt.date) -> float:
    """`ingest_1m` for [first, last] × every symbol, one run in process, recorded in DAGSTER_HOME's instance."""
    import dagster as dg

    from coin_platform.definitions import build_definitions
    from coin_platform.defs.partitions import partition_range_tags

    symbols = settings.config.symbols
    started = time.monotonic()
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, run_config=QUIET_RUN_CONFIG, raise_on_error=False,
            tags=partition_range_tags(first, last, symbols[0], symbols[-1]),
        )
    if not result.success:
        failures = [event.message for event in result.all_events if event.is_failure]
        raise BenchError(f"the backfill of {first}..{last} failed: {failures[:3]}")
    return time.monotonic() - started


# --- dagster dev -------------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, start time in clock ticks) of a live process, None if gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@dataclass
class DagsterDev:
    """`dagster dev` as `coin dev` runs it, in its own session so its whole process tree can be stopped."""

    process: subprocess.Popen
    port: int
    log_file: Path
    seen: set[tuple[int, int]] = field(default_factory=set)  # (pid, start time) of every descendant seen

    @classmethod
    def start(cls, port: int, dagster_home: Path, log_file: Path) -> DagsterDev:
        from coin_platform.local.stack.processes import default_signal_handlers
        from coin_platform.settings import PROJECT_ROOT

        command = [
            str(Path(sys.executable).parent / "dagster"), "dev",
            "-h", "127.0.0.1",
            "-p", str(port),
            "-w", str(PROJECT_ROOT / "workspace.yaml"),
        ]
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as out:
            # cwd = DAGSTER_HOME: `dagster dev` loads a .env from its working directory (see coin_platform.local.dev).
            process = subprocess.Popen(
                command, env=env, cwd=dagster_home, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=default_signal_handlers,
            )
        return cls(process=process, port=port, log_file=log_file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_bytes()[-32768:].decode(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return "\n".join(text.splitlines()[-lines:])

    def require_running(self) -> None:
        install_stop_handlers()
        if self.process.poll() is not None:
            raise BenchError(f"dagster dev exited with code {self.process.returncode}; last lines of "
                             f"{self.log_file}:\n{self.log_tail()}")

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the webserver answers /server_info."""
        started = time.monotonic()
        while True:
            self.require_running()
            self.track()
            try:
                if requests.get(f"{self.url}/server_info", timeout=2).ok:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            if time.monotonic() - started > timeout:
                raise BenchError(f"dagster dev did not answer {self.url}/server_info within {timeout:.0f} s; "
                                 f"last lines of {self.log_file}:\n{self.log_tail()}")
            time.sleep(0.5)

    def descendants(self) -> set[tuple[int, int]]:
        """Live processes in dagster dev's process group or below it, as (pid, start time)."""
        stats = {pid: stat for pid in _all_pids() if (stat := _proc_stat(pid)) is not None}
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        found, queue = set(), [self.process.pid]
        found |= {pid for pid, (_, pgid, _) in stats.items() if pgid == self.process.pid}
        while queue:
            pid = queue.pop()
            found.add(pid)
            queue.extend(children.get(pid, []))
        return {(pid, stats[pid][2]) for pid in found if pid in stats}

    def track(self) -> None:
        self.seen |= self.descendants()

    def _alive(self) -> list[int]:
        return [pid for pid, start in self.seen if (stat := _proc_stat(pid)) is not None and stat[2] == start]

    def stop(self) -> dict[str, object]:
        """SIGINT to the process group (Ctrl-C in `make dev`), wait; then SIGTERM, SIGKILL what is left."""
        self.track()
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=DAGSTER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"dagster dev did not stop within {DAGSTER_STOP_TIMEOUT_S:.0f} s of SIGINT; sending SIGTERM")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        forced: list[int] = []
        for sig, grace in ((None, KILL_GRACE_S), (signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
            alive = self._alive()
            if not alive:
                break
            if sig is not None:
                forced += alive
                for pid in alive:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._alive():
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=KILL_GRACE_S)
        leftover = self._alive()
        if leftover:
            log(f"processes of dagster dev still alive after SIGKILL: {leftover}")
        return {
            "exit_code": self.process.returncode,
            "stop_seconds": round(time.monotonic() - started, 2),
            "processes_seen": len(self.seen),
            "forced_after_stop": len(set(forced)),
            "leftover": len(leftover),
        }


# --- watching the live path --------------------------------------------------------------------------------------


@dataclass
class Live:
    """A candidate the sensors see, and how it ended (None while in flight)."""

    candidate_id: str
    decision_id: str
    close: float
    offset: int
    symbol: str
    signal: str
    outcome: str | None = None  # filled | rejected | no_position | held | trade_failed
    detail: str = ""
    recorded: float | None = None


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class Watch:
    """Follows the candidates topic, the decisions topic, the trading store and the Dagster runs (read only)."""

    def __init__(self, settings, instance) -> None:
        self.settings = settings
        self.instance = instance
        self.store_path = settings.coin_home / "trading" / "trading.duckdb"
        self.positions: dict[str, dict[int, int]] = {}
        self.live: dict[str, Live] = {}
        self.published_decisions: set[str] = set()
        self.measure_from: float | None = None  # the first tick's time: candles closing from then on count
        self.before_first_tick = 0

    def first_tick(self) -> float | None:
        """The scheduled time of the earliest live_1m_schedule run, or None before there is one."""
        import dagster as dg

        scheduled = dg.RunsFilter(job_name=INGEST_JOB, tags={"dagster/schedule_name": SCHEDULE})
        runs = self.instance.get_runs(filters=scheduled)
        ticks = []
        for run in runs:
            key = run.tags.get("dagster/run_key", "")
            with contextlib.suppress(ValueError):
                ticks.append(dt.datetime.fromisoformat(key.split(":", 1)[1]).timestamp())
        return min(ticks) if ticks else None

    def _read(self, topic: str) -> list:
        from coin_platform.events.kafka import read_from

        messages, self.positions[topic] = read_from(
            self.settings.kafka_bootstrap_servers, topic, self.positions.get(topic, {}), max_messages=10_000
        )
        return messages

    def _run_status(self, tag: str, value: str) -> str | None:
        import dagster as dg

        runs = self.instance.get_runs(filters=dg.RunsFilter(tags={tag: value}), limit=1)
        return runs[0].status.value if runs else None

    def poll(self) -> None:
        from coin_platform.events.schemas import Candidate, Decision, MessageError, decision_id
        from coin_platform.trading.store import TradingStore

        events = self.settings.config.events
        # Run statuses first: a run that succeeded before the topics are read has published by then.
        pending = [live for live in self.counted() if live.outcome is None]
        statuses = {live.candidate_id: self._run_status("coin/candidate_id", live.candidate_id) for live in pending}
        for message in self._read(events.candidates_topic):
            with contextlib.suppress(MessageError):
                candidate = Candidate.from_json(message.value or b"")
                close = candidate.close_time.timestamp()
                self.live.setdefault(candidate.id, Live(candidate.id, decision_id(candidate.id), close,
                                                        message.offset, candidate.symbol, candidate.signal))
        for message in self._read(events.decisions_topic):
            with contextlib.suppress(MessageError):
                self.published_decisions.add(Decision.from_json(message.value or b"").id)
        outcomes: dict[str, tuple[str, str, float]] = {}
        if self.store_path.exists():
            store = TradingStore(self.store_path)
            for row in store.orders().iter_rows(named=True):
                if row["status"] == "PENDING":  # sent or being sent; its outcome is not known yet
                    continue
                kind = "filled" if row["status"] == "FILLED" and row["filled_quantity"] > 0 else "rejected"
                outcomes[row["decision_id"]] = (kind, f"order {row['status']}", _epoch(row["created_at"]))
            for row in store.rejections().iter_rows(named=True):
                kind = "no_position" if row["rule"] == "no_position" else "rejected"
                outcomes[row["decision_id"]] = (kind, f"refused by {row['rule']}", _epoch(row["created_at"]))
        for live in self.live.values():
            if live.outcome is not None:
                continue
            if live.decision_id in outcomes:
                live.outcome, live.detail, live.recorded = outcomes[live.decision_id]
                continue
            trade = statuses.get(live.candidate_id)
            if trade in ("FAILURE", "CANCELED"):
                live.outcome = "trade_failed"
            elif trade == "SUCCESS" and live.decision_id not in self.published_decisions:
                live.outcome = "held"

    def counted(self) -> list[Live]:
        """Candidates whose candle closed at or after the first tick, in close order."""
        if self.measure_from is None:
            return []
        # close_time is the candle's last millisecond: the candle of the first tick closes 1 ms before it.
        chosen = [live for live in self.live.values() if live.close >= self.measure_from - 1.0]
        self.before_first_tick = len(self.live) - len(chosen)
        return sorted(chosen, key=lambda live: (live.close, live.offset))

    def measured(self, target: int) -> tuple[list[Live], bool]:
        """The counted candidates up to the `target`-th final outcome, with every earlier one resolved;
        True once that prefix holds `target` outcomes."""
        prefix, outcomes = [], 0
        for live in self.counted():
            if live.outcome is None:
                break
            prefix.append(live)
            if live.outcome in FINAL_OUTCOMES:
                outcomes += 1
                if outcomes == target:
                    return prefix, True
        return prefix, False


# --- reading the records after the fact --------------------------------------------------------------------------


@dataclass
class RunTimes:
    run_id: str
    job: str
    status: str
    tags: dict[str, str]
    created: float
    starting: float | None = None  # RUN_STARTING: the queued-run coordinator handed it to the launcher
    started: float | None = None  # RUN_START: the run process has loaded the code and begins
    ended: float | None = None
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds (succeeded steps)


def run_times(instance, since: float) -> list[RunTimes]:
    """Every run created since `since` (epoch seconds), with its life-cycle event times."""
    import dagster as dg
    from dagster._core.events import DagsterEventType as E

    wanted = {E.RUN_STARTING, E.RUN_START, E.RUN_SUCCESS, E.RUN_FAILURE, E.RUN_CANCELED, E.STEP_START, E.STEP_SUCCESS}
    records = instance.get_run_records(filters=dg.RunsFilter(created_after=dt.datetime.fromtimestamp(since, dt.UTC)))
    runs = []
    for record in records:
        run = record.dagster_run
        times = RunTimes(run.run_id, run.job_name, run.status.value, dict(run.tags), _epoch(record.create_timestamp))
        step_start: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=wanted):
            kind = entry.dagster_event.event_type
            if kind == E.RUN_STARTING:
                times.starting = entry.timestamp
            elif kind == E.RUN_START:
                times.started = entry.timestamp
            elif kind in (E.RUN_SUCCESS, E.RUN_FAILURE, E.RUN_CANCELED):
                times.ended = entry.timestamp
            elif kind == E.STEP_START:
                step_start[entry.step_key] = entry.timestamp
            elif kind == E.STEP_SUCCESS and entry.step_key in step_start:
                times.steps[entry.step_key] = entry.timestamp - step_start[entry.step_key]
        runs.append(times)
    return runs


def signal_records(settings, candidate_ids: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """ClickHouse candidates rows and trading-store decisions for `candidate_ids` (read once dagster dev has
    stopped)."""
    import polars as pl

    from coin_platform.defs.resources import build_clickhouse_resource
    from coin_platform.trading.store import TradingStore

    if not candidate_ids:
        return {}, {}
    resource = build_clickhouse_resource(settings)
    with resource.open() as hot_store:
        candidates = pl.from_arrow(hot_store.client.query_arrow(
            f"SELECT id, close_time, detected_at, published_at FROM {resource.database}.candidates FINAL "
            "WHERE id IN {ids:Array(String)}", parameters={"ids": candidate_ids}))
    decisions = TradingStore(settings.coin_home / "trading" / "trading.duckdb").transaction
    with decisions() as tx:
        recorded = tx.decisions().filter(pl.col("candidate_id").is_in(candidate_ids))
    return ({row["id"]: row for row in candidates.iter_rows(named=True)},
            {row["candidate_id"]: row for row in recorded.iter_rows(named=True)})


def build_traces(measured: list[Live], candidates: dict[str, dict], decisions: dict[str, dict],
                 runs: list[RunTimes]) -> list[Trace]:
    by_candidate = {r.tags["coin/candidate_id"]: r for r in runs
                    if r.job == TRADE_JOB and "coin/candidate_id" in r.tags}
    ingest = sorted((r for r in runs if r.job == INGEST_JOB and r.started is not None), key=lambda r: r.started)
    traces = []
    for live in measured:
        if live.outcome not in FINAL_OUTCOMES:
            continue
        candidate = candidates.get(live.candidate_id, {})
        decision = decisions.get(live.candidate_id, {})
        published = _epoch(candidate.get("published_at"))
        # The ingest run that published it: the latest one started before the publication.
        ingest_run = None
        if published is not None:
            before = [r for r in ingest if r.started <= published and (r.ended is None or r.ended >= published)]
            ingest_run = before[-1] if before else None
        trade = by_candidate.get(live.candidate_id)
        traces.append(Trace(
            candidate_id=live.candidate_id, symbol=live.symbol, signal=live.signal, outcome=live.outcome,
            close=live.close, recorded=live.recorded, published=published,
            decided=_epoch(decision.get("decided_at")), decision_published=_epoch(decision.get("published_at")),
            ingest_created=ingest_run.created if ingest_run else None,
            ingest_started=ingest_run.started if ingest_run else None,
            trade_created=trade.created if trade else None,
            trade_started=trade.started if trade else None,
        ))
    return traces


def launch_reference(runs: list[RunTimes], stopped_at: float) -> dict[str, object]:
    """Run created → RUN_START (and its parts) per job and over all runs of the measurement.

    A run that had not succeeded when the bench began stopping `dagster dev` at `stopped_at` counts
    as interrupted, not failed."""
    by_job = {}
    for job in JOBS:
        chosen = [r for r in runs if r.job == job]
        unfinished = [r for r in chosen if r.status != "SUCCESS"]
        interrupted = [r for r in unfinished if r.ended is None or r.ended >= stopped_at]
        by_job[job] = {
            "runs": len(chosen),
            "failed": len(unfinished) - len(interrupted),
            "interrupted_at_stop": len(interrupted),
            "created_to_start": spread(r.started - r.created for r in chosen if r.started),
            "created_to_starting": spread(r.starting - r.created for r in chosen if r.starting),
            "starting_to_start": spread(r.started - r.starting for r in chosen if r.started and r.starting),
            "start_to_end": spread(r.ended - r.started for r in chosen if r.started and r.ended),
        }
    launches = [r.started - r.created for r in runs if r.job in JOBS and r.started]
    queued = [r.starting - r.created for r in runs if r.job in JOBS and r.starting]
    process = [r.started - r.starting for r in runs if r.job in JOBS and r.started and r.starting]
    others: dict[str, int] = {}
    for r in runs:
        if r.job not in JOBS:
            others[r.job] = others.get(r.job, 0) + 1
    return {
        "p50": spread(launches)["p50"],
        "all_runs": spread(launches),
        # created → RUN_STARTING: queued until the daemon's run coordinator dequeues it (max_concurrent_runs,
        # its loop); RUN_STARTING → RUN_START: the run process starts and loads the code location.
        "queued_p50": spread(queued)["p50"],
        "process_start_p50": spread(process)["p50"],
        "by_job": by_job,
        "other_runs": others,
    }


def step_medians(runs: list[RunTimes], job: str) -> dict[str, float | None]:
    steps: dict[str, list[float]] = {}
    for run in runs:
        if run.job == job:
            for key, seconds in run.steps.items():
                steps.setdefault(key, []).append(seconds)
    return {key: spread(values)["p50"] for key, values in sorted(steps.items())}


# --- main --------------------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, object]:
    import dagster

    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "platform": platform.platform(),
    }


def max_concurrent_runs() -> int | None:
    """The run queue's limit in the project's dagster.yaml (copied into DAGSTER_HOME)."""
    from coin_platform.settings import PROJECT_ROOT

    with contextlib.suppress(OSError, KeyError, TypeError, yaml.YAMLError):
        return yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["concurrency"]["runs"]["max_concurrent_runs"]
    return None


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="coin-latency-"))
        try:
            yield path
        finally:
            log(f"kept the working directory {path}")
        return
    with tempfile.TemporaryDirectory(prefix="coin-latency-") as path:
        yield Path(path)


def wait_for_outcomes(dagster: DagsterDev, watch: Watch, target: int, deadline: float) -> tuple[list[Live], bool]:
    last = None
    while True:
        dagster.require_running()
        dagster.track()
        watch.poll()
        prefix, complete = watch.measured(target)
        counted = watch.counted()
        done = [live for live in counted if live.outcome is not None]
        kinds: dict[str, int] = {}
        for live in done:
            kinds[live.outcome] = kinds.get(live.outcome, 0) + 1
        status = (f"{len(counted)} live candidate(s), {len(done)} resolved {kinds or ''}; "
                  f"{sum(live.outcome in FINAL_OUTCOMES for live in prefix)}/{target} outcomes in close order")
        if status != last:
            log(status)
            last = status
        if complete:
            return prefix, True
        if time.monotonic() >= deadline:
            log(f"timed out with {status}")
            return prefix, False
        time.sleep(POLL_S)


def run(args: argparse.Namespace) -> dict[str, object]:
    import dagster as dg

    from coin_platform.local.dev import prepare_dagster_home
    from coin_platform.local.stack import LocalStack, StackError
    from coin_platform.settings import load_settings

    today = dt.datetime.now(dt.UTC).date()
    history_start = today - dt.timedelta(days=HISTORY_DAYS)
    facts = machine_facts()
    with workdir(args.keep_workdir) as work:
        ports = pick_ports()
        topic = "coin.candidates"
        config_path, backfill_path = work / "config.yaml", work / "config.backfill.yaml"
        config_path.write_text(yaml.safe_dump(platform_config(args, ports, history_start, topic)))
        backfill_path.write_text(yaml.safe_dump(platform_config(args, ports, history_start,
                                                                topic + BACKFILL_TOPIC_SUFFIX)))
        os.environ.update(bench_environ(work / ".coin", config_path, ports))
        settings = load_settings()
        backfill_settings = load_settings({**os.environ, "COIN_CONFIG": str(backfill_path)})
        local_stack = LocalStack(settings)
        timings: dict[str, float] = {}
        try:
            started = time.monotonic()
            try:
                for line in local_stack.up():
                    log(line)
            except StackError as exc:
                raise BenchError(f"the local stack did not start: {exc}") from None
            timings["stack_up_s"] = time.monotonic() - started
            home = prepare_dagster_home(settings)
            os.environ["DAGSTER_HOME"] = str(home)
            log(f"backfilling {history_start}..{today} × {', '.join(settings.config.symbols)} in process "
                f"(candidates to the side topic {topic + BACKFILL_TOPIC_SUFFIX})")
            timings["backfill_s"] = backfill(backfill_settings, history_start, today)
            install_stop_handlers()
            log(f"backfill done in {timings['backfill_s']:.1f} s; starting dagster dev on port {ports['dagster_port']}")
            dagster_started_at = time.time()
            dagster = DagsterDev.start(ports["dagster_port"], home, work / "logs" / "dagster-dev.log")
            try:
                timings["dagster_ready_s"] = dagster.wait_ready(DAGSTER_READY_TIMEOUT_S)
                log(f"Dagster UI answers at {dagster.url} after {timings['dagster_ready_s']:.1f} s")
                deadline = time.monotonic() + args.timeout
                load_before = os.getloadavg()
                with dg.DagsterInstance.get() as instance:
                    watch = Watch(settings, instance)
                    tick_deadline = time.monotonic() + FIRST_TICK_TIMEOUT_S
                    while (first := watch.first_tick()) is None:
                        dagster.require_running()
                        dagster.track()
                        if time.monotonic() > tick_deadline:
                            raise BenchError(f"the daemon ran no {SCHEDULE} tick within {FIRST_TICK_TIMEOUT_S:.0f} s;"
                                             f" last lines of {dagster.log_file}:\n{dagster.log_tail()}")
                        time.sleep(1.0)
                    watch.measure_from = first
                    log(f"first {SCHEDULE} tick at {dt.datetime.fromtimestamp(first, dt.UTC):%H:%M:%S}; "
                        f"counting candles that close from then on")
                    wait_started = time.monotonic()
                    measured, complete = wait_for_outcomes(dagster, watch, args.candidates, deadline)
                    timings["wait_s"] = time.monotonic() - wait_started
                    watched_minutes = (time.time() - first) / 60
                    load_after = os.getloadavg()
                    counted = watch.counted()
            finally:
                cleaning_up()
                stopped_at = time.time()
                log("stopping dagster dev")
                processes = dagster.stop()
                log(f"dagster dev stopped: {processes}")
            log("reading the run records, ClickHouse and the trading store")
            with dg.DagsterInstance.get() as instance:
                runs = run_times(instance, dagster_started_at)
            candidates, decisions = signal_records(settings, [live.candidate_id for live in measured])
        finally:
            cleaning_up()
            for line in local_stack.down():
                log(line)

    traces = build_traces(measured, candidates, decisions, runs)
    report = latency_report(traces)
    reference = launch_reference(runs, stopped_at)
    ingest_steps = step_medians(runs, INGEST_JOB)
    launch_parts = {"queued until the run coordinator takes it": reference["queued_p50"],
                    "run process start-up until RUN_START": reference["process_start_p50"]}
    queues = {job: values["created_to_starting"]["p50"] for job, values in reference["by_job"].items()
              if values["created_to_starting"]["p50"] is not None}
    if queues:
        job = max(queues, key=queues.get)
        launch_parts[f"the longest queue, {job}'s (max_concurrent_runs in dagster.yaml),"] = queues[job]
    resolved: dict[str, int] = {}
    for live in measured:
        resolved[live.outcome] = resolved.get(live.outcome, 0) + 1
    all_p95 = report["close_to_order_recorded"]["all_outcomes"]["p95"]
    all_p50 = report["close_to_order_recorded"]["all_outcomes"]["p50"]
    filled_p95 = report["close_to_order_recorded"]["filled"]["p95"]
    valid = complete and processes["leftover"] == 0
    return {
        "bench": "latency",
        "reference": ("Dagster run launch in the same instance: run created → RUN_START, median over the "
                      f"{reference['all_runs']['n']} runs of the measurement (queued-run coordinator, then the "
                      "run process: forked from the warm fork server, or a fresh one loading the code location); "
                      "the live path pays it twice"),
        "reference_run_launch_s": reference,
        "goal": {
            "p95_close_to_order_recorded_s": GOAL_P95_S,
            "p95_stretch_s": STRETCH_P95_S,
            "p50_close_to_order_recorded_s": GOAL_P50_S,
            "measured_p95_all_outcomes_s": all_p95,
            "measured_p50_all_outcomes_s": all_p50,
            "measured_p95_filled_s": filled_p95,
            "valid_run": valid,
            "met": bool(valid and all_p95 is not None and all_p95 <= GOAL_P95_S and all_p50 <= GOAL_P50_S),
            "stretch_met": bool(valid and all_p95 is not None and all_p95 <= STRETCH_P95_S),
        },
        "params": {
            "interval": INTERVAL,
            "symbols": list(settings.config.symbols),
            "strategy": {"kind": "rsi_reversal", "period": args.rsi_period, "oversold": args.oversold,
                         "overbought": args.overbought},
            "candidates_target": args.candidates,
            "timeout_s": args.timeout,
            "sensor_interval_s": settings.config.events.sensor_interval_seconds,
            "publish_max_age_s": settings.config.events.publish_max_age_seconds,
            "min_confidence": settings.config.inference.min_confidence,
            "history_start": history_start.isoformat(),
            "retention_days": settings.config.retention_days,
            "broker": settings.config.trading.broker,
            "max_concurrent_runs": max_concurrent_runs(),
            "order_time": "orders.created_at / rejections.created_at in the trading store",
        },
        "run": {
            "complete": complete,
            **{key: round(value, 2) for key, value in timings.items()},
            "first_tick": dt.datetime.fromtimestamp(watch.measure_from, dt.UTC).isoformat(),
            "candidates_before_first_tick": watch.before_first_tick,
            "live_candidates_seen": len(counted),
            "live_candidates_per_minute": round(len(counted) / watched_minutes, 2) if watched_minutes > 0 else None,
            "measured_candidates": len(measured),
            "resolved": resolved,
            "outcome_details": sorted({live.detail for live in measured if live.detail}),
            "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        "latency_s": report,
        "ingest_step_p50_s": ingest_steps,
        "machine": facts,
        "processes": processes,
        "notes": where_time_goes(report, reference["p50"], facts["cpus_available"] or facts["cpu_count"],
                                 ingest_steps, launch_parts),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM or Ctrl-C runs the finally blocks that stop dagster dev and the stack.
    install_stop_handlers()
    try:
        # Whatever a library prints goes to stderr: stdout holds the JSON and nothing else.
        with contextlib.redirect_stdout(sys.stderr):
            result = run(args)
    except BenchError as exc:
        print(f"latency bench failed: {exc}", file=sys.stderr)
        return 1
    return emit(result, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
