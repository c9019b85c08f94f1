"""`coin trace <candidate id or decision id>`: one candle's way to its order, step by step with timings.

The chain comes from the JSON log lines under COIN_HOME/logs (coin_platform.ops.logs): the candidate
published by the ingest run, the sensor's run requests, the runs' own events (a run launched for the
candidate or decision carries its id as a `coin/*` tag), and whatever the trading runs log. Steps the
logs lack (rotated away, or a run that logs no line for them) come from the stores: the candidate and
the decision from the hot store, the order and its fills from the trading store (client order id =
decision id). A store that is busy (chDB is one process at a time) is skipped, and the trace says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from coin_platform.core.intervals import interval_ms
from coin_platform.defs.resources import TradingDesk, build_clickhouse_resource
from coin_platform.events.schemas import decision_id
from coin_platform.ops import logs
from coin_platform.settings import Settings
from coin_platform.storage.clickhouse import ClickHouseLockTimeout, HotStore, open_hot_store
from coin_platform.trading.store import TradingStore, TradingStoreLocked

# Dagster's event types of a run worker's first and last events (RUN_START is spelled PIPELINE_START).
_RUN_STARTED = {"PIPELINE_START", "RUN_START"}
_RUN_ENDED = {
    "PIPELINE_SUCCESS": "succeeded",
    "RUN_SUCCESS": "succeeded",
    "PIPELINE_FAILURE": "failed",
    "RUN_FAILURE": "failed",
}
_ID_FIELDS = ("candidate_id", "decision_id", "client_order_id")
_ID = re.compile(r"[0-9a-f]{32}")
# How long a trace waits for a store another process holds before it goes on without it.
STORE_LOCK_TIMEOUT_S = 3.0


class TraceError(LookupError):
    """Nothing known mentions the id, or it is not an id."""


@dataclass(frozen=True)
class Step:
    """One link of the chain: what happened, when (UTC), and where that was read."""

    name: str
    at: dt.datetime
    source: str
    detail: str = ""


@dataclass
class Trace:
    query: str
    candidate_id: str | None
    decision_id: str
    symbol: str | None = None
    interval: str | None = None
    open_time: dt.datetime | None = None
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return any(step.name.startswith(name) for step in self.steps)

    def ordered(self) -> list[Step]:
        return sorted(self.steps, key=lambda step: step.at)

    def as_dict(self) -> dict[str, Any]:
        steps = self.ordered()
        start = steps[0].at if steps else None
        return {
            "query": self.query,
            "candidate_id": self.candidate_id,
            "decision_id": self.decision_id,
            "client_order_id": self.decision_id,
            "symbol": self.symbol,
            "interval": self.interval,
            "open_time": self.open_time.isoformat() if self.open_time else None,
            "steps": [
                {
                    **asdict(step),
                    "at": step.at.isoformat(),
                    "since_previous_s": round((step.at - (steps[i - 1].at if i else step.at)).total_seconds(), 3),
                    "since_start_s": round((step.at - start).total_seconds(), 3),
                }
                for i, step in enumerate(steps)
            ],
            "notes": self.notes,
        }


def _utc(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def log_files(directory: Path) -> list[Path]:
    """The JSON log files of `directory`, the rotated ones (`name.jsonl.1`, ...) included."""
    return sorted(p for p in directory.glob("*.jsonl*") if p.is_file() and not p.name.startswith("."))


def read_log_lines(directory: Path) -> Iterator[dict[str, Any]]:
    """Every JSON object of the log files; a line that is not one (cut by a crash) is skipped."""
    for path in log_files(directory):
        with path.open(encoding="utf-8", errors="replace") as file:
            for text in file:
                try:
                    line = json.loads(text)
                except ValueError:
                    continue
                if isinstance(line, dict) and isinstance(line.get("ts"), str):
                    yield line


def _about(line: Mapping[str, Any], ids: set[str]) -> bool:
    return any(line.get(name) in ids for name in _ID_FIELDS)


def resolve_ids(query: str, lines: Iterable[Mapping[str, Any]]) -> tuple[str | None, str] | None:
    """(candidate id, decision id) of `query`, a candidate or a decision id, as the lines tell; None if no line does."""
    for line in lines:
        if line.get("candidate_id") == query:
            return query, decision_id(query)
        if query in (line.get("decision_id"), line.get("client_order_id")) and line.get("candidate_id"):
            return line["candidate_id"], query
    return None


def trace_from_lines(query: str, candidate: str | None, decision: str, lines: Iterable[Mapping[str, Any]]) -> Trace:
    """The steps the log lines about `candidate` and `decision` tell, one per event (runs by their first event)."""
    trace = Trace(query=query, candidate_id=candidate, decision_id=decision)
    ids = {decision} | ({candidate} if candidate else set())
    runs_seen: set[tuple[str, str]] = set()
    for line in sorted((line for line in lines if _about(line, ids)), key=lambda line: line["ts"]):
        at = _utc(line["ts"])
        trace.symbol = trace.symbol or line.get("symbol")
        trace.interval = trace.interval or line.get("interval")
        if (
            trace.open_time is None
            and line.get("open_time")
            and line.get("event") in (logs.CANDIDATE_PUBLISHED, logs.RUN_REQUESTED)
        ):
            trace.open_time = _utc(line["open_time"])
        event, dagster_event, run_id = line.get("event"), line.get("dagster_event"), line.get("run_id", "")
        job = line.get("job", "")
        if event == logs.CANDIDATE_PUBLISHED:
            if line.get("detected_at"):
                trace.steps.append(Step("candidate detected", _utc(line["detected_at"]), "log", f"run {run_id}"))
            trace.steps.append(Step("candidate published", at, "log", f"{line.get('topic')}@{line.get('offset')}"))
        elif event == logs.RUN_REQUESTED and (job, line.get("run_key")) not in runs_seen:
            runs_seen.add((job, line.get("run_key")))
            trace.steps.append(Step(f"run requested ({job})", at, "log", f"by {line.get('sensor')}"))
        elif event in (logs.DECISION_RECORDED, logs.DECISION_PUBLISHED, logs.ORDER_RECORDED, logs.ORDER_FILLED):
            name = {
                logs.DECISION_RECORDED: "decision recorded",
                logs.DECISION_PUBLISHED: "decision published",
                logs.ORDER_RECORDED: "order recorded",
                logs.ORDER_FILLED: "filled",
            }[event]
            trace.steps.append(Step(name, at, "log", line.get("message", "")))
        elif dagster_event in _RUN_STARTED:
            trace.steps.append(Step(f"run launched ({job})", at, "log", f"run {run_id}"))
        elif dagster_event in _RUN_ENDED:
            trace.steps.append(Step(f"run {_RUN_ENDED[dagster_event]} ({job})", at, "log", f"run {run_id}"))
    return trace


def add_candle_close(trace: Trace) -> None:
    """The first link: the candle closed at open time + interval."""
    if trace.open_time is not None and trace.interval:
        close = trace.open_time + dt.timedelta(milliseconds=interval_ms(trace.interval))
        trace.steps.append(Step("candle closed", close, "candle", f"{trace.symbol} {trace.interval}"))


def add_candidate_from_store(trace: Trace, candidates) -> None:
    """Detection and publication times from the hot store's candidates row (polars frame) of the candidate."""
    rows = candidates.filter(candidates["id"] == trace.candidate_id)
    if rows.is_empty():
        return
    row = rows.row(0, named=True)
    if not trace.has("candidate detected") and row["detected_at"] is not None:
        trace.steps.append(Step("candidate detected", row["detected_at"], "hot store", "candidates.detected_at"))
    if not trace.has("candidate published") and row["published_at"] is not None:
        trace.steps.append(Step("candidate published", row["published_at"], "hot store", "candidates.published_at"))


def add_decision_from_store(trace: Trace, decided_at: dt.datetime, published_at: dt.datetime | None, action: str):
    if not trace.has("decision recorded"):
        trace.steps.append(Step("decision recorded", decided_at, "hot store", f"{action}; decisions.decided_at"))
    if published_at is not None and not trace.has("decision published"):
        trace.steps.append(Step("decision published", published_at, "hot store", "decisions.published_at"))


def add_order_from_store(trace: Trace, orders, fills) -> None:
    """The order (trading store `orders`, client order id = decision id) and its fills."""
    mine = orders.filter(orders["client_order_id"] == trace.decision_id)
    if not mine.is_empty() and not trace.has("order recorded"):
        order = mine.row(0, named=True)
        detail = f"{order['side']} {order['quantity']:g} {order['symbol']} ({order['broker']}): {order['status']}"
        trace.steps.append(Step("order recorded", order["created_at"], "trading store", detail))
    if not trace.has("filled"):
        for fill in fills.filter(fills["client_order_id"] == trace.decision_id).iter_rows(named=True):
            detail = f"{fill['quantity']:g} at {fill['price']:g}, fee {fill['fee']:g}"
            trace.steps.append(Step("filled", fill["filled_at"], "trading store", detail))


def render(trace: Trace) -> str:
    """The chain as a table: step, time (UTC), time since the previous step and since the first."""
    data = trace.as_dict()
    head = [
        f"candidate {trace.candidate_id or '?'}  decision / client order {trace.decision_id}",
        f"{trace.symbol or '?'} {trace.interval or '?'} candle opened at "
        f"{trace.open_time.isoformat() if trace.open_time else '?'}",
    ]
    rows = [
        [
            s["name"],
            s["at"].replace("+00:00", "Z"),
            f"+{s['since_previous_s']:.3f} s",
            f"{s['since_start_s']:.3f} s",
            s["source"],
            s["detail"],
        ]
        for s in data["steps"]
    ]
    table = tabulate(rows, headers=["step", "at (UTC)", "step took", "since start", "from", "detail"])
    return "\n".join([*head, "", table, *(f"note: {note}" for note in trace.notes)])


def _candle_open(close_time: dt.datetime, interval: str) -> dt.datetime:
    """A candle's open time from its Binance close time (the last millisecond of the candle)."""
    return close_time + dt.timedelta(milliseconds=1) - dt.timedelta(milliseconds=interval_ms(interval))


class _Stores:
    """The hot store and the trading store of a deployment, opened only when a step needs them."""

    def __init__(self, settings: Settings, trace_notes: list[str]) -> None:
        self.settings = settings
        self.notes = trace_notes

    @contextlib.contextmanager
    def hot_store(self) -> Iterator[HotStore | None]:
        if not self.settings.stores_on_disk:
            self.notes.append("the hot store was not read (only the local chDB one is)")
            yield None
            return
        config = dataclasses.replace(
            build_clickhouse_resource(self.settings).get_config(), lock_timeout_s=STORE_LOCK_TIMEOUT_S
        )
        if config.path is None or not Path(config.path).exists():
            yield None
            return
        with contextlib.ExitStack() as stack:
            try:
                store = stack.enter_context(open_hot_store(config, self.settings.config.retention_days))
            except ClickHouseLockTimeout:
                self.notes.append(f"the hot store was busy for {STORE_LOCK_TIMEOUT_S:g} s (a run holds it): not read")
                store = None
            yield store

    def trading_records(self, decision_ids: Sequence[str]):
        """The recorded decisions among `decision_ids` (id -> (decision, published at)), the orders and the fills,
        read in one transaction; None when there is no trading store or it stays busy."""
        path = TradingDesk.from_settings(self.settings).store_path
        if not path.exists():
            return None
        try:
            with TradingStore(path, lock_timeout_s=STORE_LOCK_TIMEOUT_S).transaction() as tx:
                decisions = {i: found for i in decision_ids if (found := tx.decision(i)) is not None}
                return decisions, tx.orders(), tx.fills()
        except TradingStoreLocked:
            self.notes.append(f"the trading store was busy for {STORE_LOCK_TIMEOUT_S:g} s: not read")
            return None


def build_trace(query: str, settings: Settings) -> Trace:
    """The chain of the candidate or decision `query`, from the logs and, for what they lack, the stores."""
    if not _ID.fullmatch(query):
        raise TraceError(f"{query!r} is not a candidate or decision id (32 lower-case hex characters)")
    directory = logs.log_dir(settings.coin_home)
    lines = list(read_log_lines(directory))
    notes: list[str] = []
    stores = _Stores(settings, notes)
    resolved = resolve_ids(query, lines)
    # The query is a candidate id (its decision's id follows from it) or a decision / client order id.
    records = stores.trading_records([query, decision_id(query)])
    decisions, orders = (records[0], records[1:]) if records is not None else ({}, None)
    if resolved is None and decision_id(query) in decisions:
        resolved = (query, decision_id(query))
    elif resolved is None and query in decisions:
        resolved = (decisions[query][0].candidate_id, query)
    elif resolved is None and orders is not None:
        ordered = set(orders[0]["client_order_id"].to_list())
        if query in ordered:
            resolved = (None, query)
        elif decision_id(query) in ordered:
            resolved = (query, decision_id(query))
    if resolved is None:
        raise TraceError(f"no log line in {directory} and no stored candidate, decision or order mentions {query}")
    trace = trace_from_lines(query, *resolved, lines)
    trace.notes = notes
    if trace.decision_id in decisions and not (trace.has("decision recorded") and trace.has("decision published")):
        decision, published_at = decisions[trace.decision_id]
        add_decision_from_store(trace, decision.decided_at, published_at, decision.action)
        trace.symbol, trace.interval = trace.symbol or decision.symbol, trace.interval or decision.interval
        trace.open_time = trace.open_time or _candle_open(decision.candle_close_time, decision.interval)
        trace.candidate_id = trace.candidate_id or decision.candidate_id
    with stores.hot_store() as hot:
        if hot is not None:
            if (
                trace.candidate_id
                and trace.open_time
                and trace.symbol
                and trace.interval
                and not (trace.has("candidate detected") and trace.has("candidate published"))
            ):
                rows = hot.read_candidates(
                    trace.symbol, trace.interval, trace.open_time, trace.open_time + dt.timedelta(milliseconds=1)
                )
                add_candidate_from_store(trace, rows)
    if orders is not None and not (trace.has("order recorded") and trace.has("filled")):
        add_order_from_store(trace, *orders)
    add_candle_close(trace)
    return trace
