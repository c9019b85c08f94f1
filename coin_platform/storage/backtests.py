"""Backtest outputs in the object store: the one writer and the one reader of `backtests/{run_id}/`.

A run writes its progress while it works and, when done, its report, pictures, trades (a sweep:
its results and walk-forward windows) and last `summary.json` (metrics and parameters). The summary
is written after everything else, so a reader that finds it finds the whole run's outputs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from coin_platform.storage.layout import backtest_key
from coin_platform.storage.object_store import ObjectStore

REPORT = "report.html"
SUMMARY = "summary.json"
PROGRESS = "progress.json"
TRADES = "trades.parquet"
SWEEP = "sweep.parquet"
WALK_FORWARD = "walk_forward.parquet"


@dataclass(frozen=True)
class BacktestOutputs:
    """What one finished backtest run keeps."""

    report_html: str
    summary: Mapping[str, Any]  # JSON-ready: metrics, per-symbol metrics, parameters
    trades: pl.DataFrame
    pictures: Mapping[str, bytes] = field(default_factory=dict)  # name (without .png) -> PNG bytes


def write_backtest(store: ObjectStore, run_id: str, outputs: BacktestOutputs) -> dict[str, str]:
    """Write a run's outputs (a rerun of the same run id replaces them); returns name -> object path."""
    summary = json.dumps(_json_ready(outputs.summary), allow_nan=False, sort_keys=True)
    written = {}
    for name, data in {
        REPORT: outputs.report_html.encode("utf-8"),
        **{f"{picture}.png": png for picture, png in outputs.pictures.items()},
    }.items():
        store.write_bytes(backtest_key(run_id, name), data)
        written[name] = store.path(backtest_key(run_id, name))
    store.write_parquet(backtest_key(run_id, TRADES), outputs.trades)
    written[TRADES] = store.path(backtest_key(run_id, TRADES))
    store.write_bytes(backtest_key(run_id, SUMMARY), summary.encode("utf-8"))
    written[SUMMARY] = store.path(backtest_key(run_id, SUMMARY))
    return written


@dataclass(frozen=True)
class SweepOutputs:
    """What one finished parameter sweep keeps: a row per parameter set, per walk-forward window, and pictures."""

    summary: Mapping[str, Any]
    results: pl.DataFrame
    walk_forward: pl.DataFrame | None = None
    pictures: Mapping[str, bytes] = field(default_factory=dict)


def write_sweep(store: ObjectStore, run_id: str, outputs: SweepOutputs) -> dict[str, str]:
    """Write a sweep's outputs under the run's prefix, the summary last; returns name -> object path."""
    summary = json.dumps(_json_ready(outputs.summary), allow_nan=False, sort_keys=True)
    written = {}
    frames = {
        SWEEP: outputs.results,
        **({WALK_FORWARD: outputs.walk_forward} if outputs.walk_forward is not None else {}),
    }
    for name, frame in frames.items():
        store.write_parquet(backtest_key(run_id, name), frame)
        written[name] = store.path(backtest_key(run_id, name))
    for picture, png in outputs.pictures.items():
        store.write_bytes(backtest_key(run_id, f"{picture}.png"), png)
        written[f"{picture}.png"] = store.path(backtest_key(run_id, f"{picture}.png"))
    store.write_bytes(backtest_key(run_id, SUMMARY), summary.encode("utf-8"))
    written[SUMMARY] = store.path(backtest_key(run_id, SUMMARY))
    return written


def read_sweep_results(store: ObjectStore, run_id: str) -> pl.DataFrame | None:
    key = backtest_key(run_id, SWEEP)
    return store.read_parquet(key) if store.exists(key) else None


def write_backtest_progress(store: ObjectStore, run_id: str, fraction: float, stage: str) -> None:
    """How far a running backtest is (0..1) and what it is doing, for the API's status answer."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress must be within 0..1, got {fraction!r}")
    record = {"progress": fraction, "stage": stage, "at": dt.datetime.now(dt.UTC).isoformat()}
    store.write_bytes(backtest_key(run_id, PROGRESS), json.dumps(record).encode("utf-8"))


def read_backtest_summary(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    """The finished run's summary, or None while it has none."""
    return _read_json(store, backtest_key(run_id, SUMMARY))


def read_backtest_progress(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    return _read_json(store, backtest_key(run_id, PROGRESS))


def read_backtest_report(store: ObjectStore, run_id: str) -> str | None:
    key = backtest_key(run_id, REPORT)
    return store.read_bytes(key).decode("utf-8") if store.exists(key) else None


def read_backtest_trades(store: ObjectStore, run_id: str) -> pl.DataFrame | None:
    key = backtest_key(run_id, TRADES)
    return store.read_parquet(key) if store.exists(key) else None


def _read_json(store: ObjectStore, key: str) -> dict[str, Any] | None:
    return json.loads(store.read_bytes(key)) if store.exists(key) else None


def _json_ready(value: Any) -> Any:
    """Metrics as JSON allows them: NaN and inf (undefined ratios) become null, times ISO strings."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value
