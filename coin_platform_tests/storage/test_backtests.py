"""The backtest outputs dataset: written once per run id, read back whole, never a path from a run id."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from coin_platform.storage.backtests import (
    BacktestOutputs,
    read_backtest_progress,
    read_backtest_report,
    read_backtest_summary,
    read_backtest_trades,
    write_backtest,
    write_backtest_progress,
)
from coin_platform.storage.object_store import ObjectStore

RUN_ID = "3f2a9c1e-0d4b-4c55-9a1e-2b7f00c0ffee"


@pytest.fixture
def store(tmp_path) -> ObjectStore:
    return ObjectStore.local(tmp_path / "bucket")


def _outputs(total_return: float) -> BacktestOutputs:
    trades = pl.DataFrame({"symbol": ["BTCUSDT"], "pnl": [12.5]})
    return BacktestOutputs(
        report_html="<html><body>report</body></html>",
        summary={
            "metrics": {"total_return_pct": total_return, "profit_factor": float("inf"), "sharpe": float("nan")},
            "params": {"start": dt.date(2025, 1, 1), "holding": dt.timedelta(minutes=15)},
        },
        trades=trades,
        pictures={"equity": b"\x89PNG\r\n\x1a\nfake"},
    )


def test_a_run_reads_back_as_written_and_undefined_ratios_become_null(store):
    assert read_backtest_summary(store, RUN_ID) is None
    written = write_backtest(store, RUN_ID, _outputs(3.5))

    summary = read_backtest_summary(store, RUN_ID)
    assert summary["metrics"] == {"total_return_pct": 3.5, "profit_factor": None, "sharpe": None}
    assert summary["params"] == {"start": "2025-01-01", "holding": 900.0}
    assert read_backtest_report(store, RUN_ID) == "<html><body>report</body></html>"
    assert read_backtest_trades(store, RUN_ID).to_dicts() == [{"symbol": "BTCUSDT", "pnl": 12.5}]
    assert set(written) == {"report.html", "equity.png", "trades.parquet", "summary.json"}
    assert store.read_bytes(f"backtests/{RUN_ID}/equity.png").startswith(b"\x89PNG")


def test_a_rerun_replaces_the_outputs(store):
    write_backtest(store, RUN_ID, _outputs(3.5))
    write_backtest(store, RUN_ID, _outputs(-1.0))
    assert read_backtest_summary(store, RUN_ID)["metrics"]["total_return_pct"] == -1.0


def test_progress_is_a_fraction(store):
    write_backtest_progress(store, RUN_ID, 0.4, "simulating")
    progress = read_backtest_progress(store, RUN_ID)
    assert (progress["progress"], progress["stage"]) == (0.4, "simulating")
    with pytest.raises(ValueError, match="within 0..1"):
        write_backtest_progress(store, RUN_ID, 1.5, "done")


@pytest.mark.parametrize("run_id", ["../../trading", "a/b", "", "x" * 65, "run id", "..", "r\x00"])
def test_a_run_id_that_is_not_an_id_is_refused_before_any_path_is_built(store, run_id):
    with pytest.raises(ValueError, match="letters, digits or dashes"):
        read_backtest_summary(store, run_id)
    with pytest.raises(ValueError, match="letters, digits or dashes"):
        write_backtest(store, run_id, _outputs(1.0))


def test_summary_is_strict_json(store):
    write_backtest(store, RUN_ID, _outputs(1.0))
    json.loads(store.read_bytes(f"backtests/{RUN_ID}/summary.json"), parse_constant=pytest.fail)
