"""bench/backtest.py end to end on tiny inputs: its JSON's shape and the trade comparisons, never its timings."""

import json
import subprocess
import sys

import pytest

from coin_platform.settings import PROJECT_ROOT

BENCH = PROJECT_ROOT / "bench" / "backtest.py"


@pytest.mark.timeout(600)  # a fresh vectorbt process loads (or compiles) its numba kernels
def test_bench_prints_one_json_object_with_identical_trades(tmp_path):
    json_out = tmp_path / "result.json"
    arguments = ["--rows", "3000", "--repeats", "1", "--sweep-rows", "3000", "--vectorbt-sweep-pairs", "4"]
    completed = subprocess.run(
        [sys.executable, str(BENCH), *arguments, "--json-out", str(json_out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=BENCH.parent,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)  # stdout holds the JSON and nothing else
    assert json.loads(json_out.read_text()) == result
    assert result["bench"] == "backtest"
    (size,) = result["sizes"]
    assert size["rows"] == 3000
    assert size["backtesting_py"]["trades_vs_ours"] == {"identical": True, "first_difference": None}
    assert size["vectorbt"]["trades_vs_ours"] == {"identical": True, "first_difference": None}
    assert size["ours"]["trades"] == size["vectorbt"]["trades"] == size["backtesting_py"]["closed_trades"] + 1
    assert size["goals_met"]["identical_trades"] is True
    assert set(size["ours"]["cold"]) == {"import_s", "first_call_s", "cold_s"}
    assert size["ours"]["simulate_and_first_read_ms"] > 0  # the lazy frames' cost is timed too
    sweep = result["sweep"]
    assert sweep["pairs"] == 1000 and sweep["vectorbt"]["pairs_measured"] == 4
    assert set(sweep["best_by_sharpe"]) == {"fast", "slow"}
