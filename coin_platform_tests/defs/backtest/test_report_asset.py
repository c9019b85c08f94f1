"""backtest_report and strategy_leaderboard in Dagster, over real candles in SeaweedFS."""

import datetime as dt
import uuid

import dagster as dg
import polars as pl
import pytest

from coin_platform.definitions import build_definitions
from coin_platform.market.funding import FUNDING_SCHEMA
from coin_platform.storage.backtests import read_backtest_progress, read_backtest_report, read_backtest_summary
from coin_platform.storage.funding import write_funding_day
from coin_platform_tests.backtest.test_decision_path import DAY
from coin_platform_tests.defs.backtest.stored import stored_day_settings
from coin_platform_tests.defs.harness import object_store


@pytest.fixture(scope="module")
def settings(tmp_path_factory, seaweedfs):
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    return stored_day_settings(
        tmp_path_factory.mktemp("report"),
        seaweedfs,
        bucket,
        config={"backtest": {"interval": "1m", "funding": False}},
    )


def _backtest(settings, run_config: dict, strategy: str = "rsi") -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def("backtest_job").execute_in_process(
        run_config={"ops": {"backtest_report": {"config": run_config}}},
        partition_key=strategy,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_a_backtest_run_writes_its_report_and_shows_the_metrics(settings):
    result = _backtest(settings, {"start": DAY.isoformat(), "end": DAY.isoformat(), "fee": 0.0005})
    assert result.success
    run_id = result.run_id
    store = object_store(settings)
    summary = read_backtest_summary(store, run_id)
    assert summary["strategy"] == "rsi" and summary["params"]["fee"] == 0.0005
    assert summary["metrics"]["trade_count"] > 0
    assert read_backtest_progress(store, run_id)["progress"] == 1.0
    html = read_backtest_report(store, run_id)
    assert html.startswith("<!DOCTYPE html>") and "ADAUSDT" in html
    metadata = result.asset_materializations_for_node("backtest_report")[0].metadata
    assert metadata["trades"].value == summary["metrics"]["trade_count"]
    assert "data:image/png;base64," in metadata["equity"].value
    assert "| symbol |" in metadata["metrics"].value
    assert metadata["report"].value.endswith(f"backtests/{run_id}/report.html")


def test_the_decision_path_backtest_runs_the_live_rules(settings):
    result = _backtest(settings, {"start": DAY.isoformat(), "end": DAY.isoformat(), "decision_path": True})
    assert result.success
    summary = read_backtest_summary(object_store(settings), result.run_id)
    assert summary["params"]["decision_path"] is True and summary["params"]["orders"] > 0


@pytest.mark.parametrize(
    ("run_config", "named"),
    [
        ({"leverage": 500.0}, "backtest.leverage"),
        ({"sizing": "all_in"}, "backtest.sizing"),
        ({"start": "2022-12-14", "end": "2022-12-13"}, "backtest.start"),
        ({"symbols": ["BTCUSDT"]}, "backtest.symbols"),
    ],
)
def test_a_bad_run_config_fails_naming_the_field_and_writes_nothing(settings, run_config, named):
    result = _backtest(settings, run_config)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert named in failure.event_specific_data.error.message
    assert read_backtest_summary(object_store(settings), result.run_id) is None


def test_a_range_without_candles_fails_naming_it(settings):
    result = _backtest(settings, {"start": "2022-12-20", "end": "2022-12-21"})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "no 1M candles for ADAUSDT" in failure.event_specific_data.error.message


def test_the_leaderboard_ranks_every_strategy_and_symbol(settings):
    defs = build_definitions(settings)
    result = dg.materialize(
        [defs.get_assets_def("strategy_leaderboard")],
        resources=defs.resources,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"strategy_leaderboard": {"config": {"start": DAY.isoformat(), "end": DAY.isoformat()}}}},
    )
    metadata = result.asset_materializations_for_node("strategy_leaderboard")[0].metadata
    assert metadata["dagster/row_count"].value == 1  # one strategy × one symbol
    assert "data:image/png;base64," in metadata["chart"].value


def test_stored_funding_rates_are_charged_to_positions_held_across_them(settings):
    store = object_store(settings)
    times = [dt.datetime(2022, 12, 13, hour, 0, 0, 7000, tzinfo=dt.UTC) for hour in (0, 8, 16)]  # stamped ms late
    write_funding_day(
        store,
        "ADAUSDT",
        DAY,
        pl.DataFrame(
            {"symbol": "ADAUSDT", "funding_time": times, "funding_rate": [0.01] * 3, "mark_price": [None] * 3},
            schema=FUNDING_SCHEMA,
        ),
    )
    day = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    charged = read_backtest_summary(store, _backtest(settings, {**day, "funding": True}).run_id)
    free = read_backtest_summary(store, _backtest(settings, {**day, "funding": False}).run_id)
    assert charged["funding_rows"] == 3 and free["funding_rows"] == 0
    assert charged["params"]["funding_events"] >= 1
    assert charged["metrics"]["final_equity"] != free["metrics"]["final_equity"]
