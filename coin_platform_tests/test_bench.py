"""bench/ingest.py end to end on a tiny backfill: its JSON's shape and behaviour, never its timings."""

import json
import subprocess
import sys

from coin_platform.backtest.report import MAX_TRADES_SHOWN
from coin_platform.settings import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench" / "ingest.py"


def test_bench_prints_one_json_object_with_both_phases(tmp_path):
    json_out = tmp_path / "result.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--days",
            "1",
            "--symbols",
            "1",
            "--weight-limit",
            "100000",
            "--unlimited-days",
            "1",
            "--start-mid-window",
            "--json-out",
            str(json_out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)  # stdout holds the JSON and nothing else
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "ingest"
    assert "REQUEST_WEIGHT" in result["reference"]
    assert result["params"]["symbols"] == ["BTCUSDT"]

    limited = result["budget_limited"]
    assert limited["runs"] == 1
    assert limited["candles"] == 1440
    assert limited["rejected_429"] == limited["rejected_418"] == 0
    assert limited["windows"] == len(limited["per_window"]) >= 1
    # One 1440-row page (weight 10), exchangeInfo and time.
    assert sum(w["weight"] for w in limited["per_window"]) >= 12
    assert set(limited["step_seconds"]) == {
        "fetch_and_clean_1m",
        "ohlcv_1m_checks",
        "hot_ohlcv_1m",
        "hot_ohlcv_1m_checks",
        "features_1m",
        "candidates_1m",
    }

    unlimited = result["limiter_off"]
    assert unlimited["candles"] == 1440
    assert unlimited["seconds_per_million_candles"] > 0

    # A one-page run never fills two windows: the bench must not call it a valid measurement.
    assert limited["over_two_windows"] is False
    assert result["goals"] == {"weight_fraction_min": 0.9, "zero_429": True, "valid_run": False, "met": False}


def test_latency_bench_stage_breakdown_on_synthetic_traces(monkeypatch):
    """bench/latency.py's statistics on hand-made traces (no Dagster, no stack)."""
    import importlib.util

    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "bench"))  # as when run as a script: its helpers beside it

    spec = importlib.util.spec_from_file_location("bench_latency", PROJECT_ROOT / "bench" / "latency.py")
    latency = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = latency  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(latency)
    finally:
        del sys.modules[spec.name]

    assert latency.percentile([], 50) is None
    assert latency.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert latency.percentile([1.0, 2.0], 95) == 1.95

    def trace(index: int, outcome: str, total: float) -> object:
        close = 1_000.0 * index
        return latency.Trace(
            candidate_id=f"c{index}", symbol="BTCUSDT", signal="enter_long", outcome=outcome,
            close=close, published=close + 10, decided=close + 20, decision_published=close + 21,
            ingest_created=close + 1, ingest_started=close + 5,
            trade_created=close + 12, trade_started=close + 16, recorded=close + total,
        )

    traces = [trace(1, "filled", 30.0), trace(2, "no_position", 40.0), trace(3, "filled", 50.0)]
    # A trace without run records still counts in the totals and the main stages.
    traces.append(latency.Trace("c4", "ETHUSDT", "exit_short", "rejected", close=4_000.0, recorded=4_060.0,
                                published=4_012.0, decided=4_030.0))
    report = latency.latency_report(traces)
    total = report["close_to_order_recorded"]
    assert total["filled"] == {"n": 2, "p50": 40.0, "p95": 49.0, "max": 50.0}
    assert total["all_outcomes"]["n"] == 4 and total["all_outcomes"]["max"] == 60.0
    assert report["stages"]["close_to_published"] == {"n": 4, "p50": 10.0, "p95": 11.7, "max": 12.0}
    assert report["stages"]["decided_to_recorded"]["max"] == 30.0
    substages = report["substages"]
    assert [name for name, *_ in latency.SUBSTAGES] == list(substages)
    assert substages["ingest_launch"] == {"n": 3, "p50": 4.0, "p95": 4.0, "max": 4.0}
    assert substages["order_until_recorded"]["p50"] == 19.0  # 30-21, 40-21, 50-21
    # The substages of a fully traced candidate add up to its close → recorded time.
    first = traces[0]
    parts = sum(getattr(first, b) - getattr(first, a) for _, a, b, _ in latency.SUBSTAGES)
    assert parts == first.recorded - first.close

    notes = latency.where_time_goes(report, launch_p50=4.0, cpus=2, ingest_steps={"candidates_1m": 3.0})
    assert "Dagster run launches" in notes and "8.0 s of the 15 s goal" in notes and "candidates_1m" in notes
    assert latency.where_time_goes(latency.latency_report([]), None, None).startswith("No candidate")


def test_backtest_report_bench_prints_its_measurements(tmp_path):
    """bench/backtest_report.py on a small backtest: the JSON's shape, never its timings."""
    json_out = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "backtest_report.py"), "--bars", "3000", "--repeats", "1",
         "--json-out", str(json_out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "backtest_report"
    assert result["params"]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert result["params"]["strategy"] == "ema_20_50"
    # The engine's EMA(20/50) crossover trades a random walk every few dozen bars: more than one trade a symbol.
    assert result["trades"] > 2
    assert result["trades_shown"] == min(result["trades"], MAX_TRADES_SHOWN)
    assert set(result["png_bytes"]) == {"equity_drawdown", "returns_by_symbol"}
    assert result["pngs_within_goal"] is True
    assert result["html_bytes"] > 1_000_000  # BokehJS is inlined


def test_api_bench_prints_both_measurements(tmp_path):
    """bench/api.py on two days of 1h candles and three launches: its JSON's shape, never its timings."""
    json_out = tmp_path / "api.json"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "api.py"), "--requests", "3", "--days", "2", "--interval", "1h",
         "--json-out", str(json_out)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "api"
    assert result["params"]["candles"] == 48
    assert result["run_async_ms"]["n"] == 3
    assert result["run_async_ms"]["p50"] <= result["run_async_ms"]["p95"] <= result["run_async_ms"]["max"]
    backtest = result["backtest"]
    assert 0 < backtest["run_launch_share"] < 1
    assert backtest["request_to_completed_s"] >= backtest["run_launch_s"] + backtest["run_s"]
    assert isinstance(backtest["trade_count"], int)


def test_health_bench_times_coin_health(tmp_path):
    """bench/health.py, one run: its JSON's shape, never its timings (nor the verdict: on a busy machine a
    component may miss its deadline, which the bench reports)."""
    json_out = tmp_path / "health.json"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "health.py"), "--runs", "1", "--json-out", str(json_out)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "health" and result["params"]["runs"] == 1
    components = {"s3", "kafka", "clickhouse", "trading_store", "warehouse", "candles", "dagster"}
    assert all(failure.split(" ", 1)[0] in components and ": " in failure for failure in result["failed_checks"])
    assert result["command_s"]["p50"] >= result["checks_s"]["p50"] > 0


def test_archive_bench_builds_and_rebuilds_a_year(tmp_path):
    """bench/archive.py on one symbol-year: its JSON's shape and counts, never its timings."""
    json_out = tmp_path / "archive.json"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "archive.py"), "--symbols", "1", "--years", "1",
         "--json-out", str(json_out)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "archive" and result["rest_ceiling_candles_per_s"] == 6000
    (year,) = result["params"]["years"]
    minutes = 366 * 1440 if year % 4 == 0 else 365 * 1440
    assert result["build"]["candles"] == result["rebuild"]["candles"] == result["pieces_one_year"]["candles"] == minutes
    assert result["build"]["archive_files"] == 12 and result["build"]["megabytes_downloaded"] > 0
    assert result["rebuild"]["megabytes_downloaded"] == 0  # every file's checksum unchanged: nothing downloaded
    assert result["goal_met"] == (result["build"]["candles_per_s"] >= result["goal_candles_per_s"])


def test_universe_bench_measures_each_scale(tmp_path):
    """bench/universe.py at toy scales: its JSON's shape and partition counts, never its timings."""
    json_out = tmp_path / "universe.json"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "universe.py"), "--symbols", "5", "--years", "1",
         "--window", "10", "--materialized", "1", "--json-out", str(json_out)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "universe"
    assert result["universe_windowed"]["partitions_per_asset"] == 5 * 10
    assert result["universe_every_day"]["partitions_per_asset"] > result["universe_windowed"]["partitions_per_asset"]
    assert result["universe_windowed"]["materialized_recorded"] == 5
    for scale in ("today", "universe_every_day", "universe_windowed"):
        assert result[scale]["definitions_load_s"] > result[scale]["definitions_build_s"] >= 0
        assert result[scale]["backfill_runs_submitted"] >= 1  # the history backfill's first runs, queued
    assert result["goal_met"] == (
        max(result["universe_windowed"][k] for k in ("definitions_build_s", "list_partitions_s", "partition_status_s"))
        < 2
        and result["universe_windowed"]["automation_tick_s"] < 10
        and result["universe_windowed"]["backfill_tick_s"] < 10
    )
