"""bench/ingest.py end to end on a tiny backfill: its JSON's shape and behaviour, never its timings."""

import json
import subprocess
import sys

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
        "raw_klines_1m",
        "ohlcv_1m",
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
