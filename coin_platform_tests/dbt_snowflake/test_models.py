"""`dbt build` of dbt_snowflake on the duckdb target, over the platform's own data.

The marts are checked against independent polars computations from the raw frames, and a leak put into
the training set on purpose fails the no_lookahead test. (The incremental rerun of one day runs through
Dagster: coin_platform_tests/defs/dbt/test_assets.py.)
"""

import json
import shutil

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from coin_platform.core.intervals import SUPPORTED_INTERVALS, interval_ms
from coin_platform.core.time import UTC_MS
from coin_platform.defs.resources import DBT_PROJECT_DIR
from coin_platform.features import FEATURE_SCHEMA
from coin_platform.local.replay.warehouse import RawData, run_dbt
from coin_platform.ml.dataset import TRAINING_SCHEMA
from coin_platform.storage.warehouse_tables import RAW_SCHEMA, RAW_TABLES

HORIZON = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]["label_horizon_candles"]
FEATURES = [c for c in FEATURE_SCHEMA if c != "open_time"]
DECISION_OUTCOME_COLUMNS = [
    "decision_id",
    "candidate_id",
    "strategy",
    "symbol",
    "interval",
    "signal",
    "action",
    "confidence",
    "model_version",
    "candle_close_time",
    "decided_at",
    "price",
    "exit_price",
    "forward_return",
    "hit",
]
DAILY_PERFORMANCE_COLUMNS = [
    "day",
    "strategy",
    "candidates",
    "decisions",
    "acted",
    "orders",
    "fills",
    "paper_pnl",
    "hit_rate",
]


def _utc_ms(frame: pl.DataFrame) -> pl.DataFrame:
    """Every timestamp as UTC milliseconds, the raw frames' type, so frames from DuckDB compare."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").cast(UTC_MS)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime)
    )


def _mart(built, name: str, order: list[str]) -> pl.DataFrame:
    return _utc_ms(built.query(f"select * from main.{name}")).sort(order)


def _side_adjusted(side: pl.Expr, entry: pl.Expr, exit_: pl.Expr) -> pl.Expr:
    return pl.when(side == "long").then(exit_ / entry - 1).when(side == "short").then(1 - exit_ / entry)


def expected_outcomes(raw: RawData) -> pl.DataFrame:
    """Each candidate's candle, the candle HORIZON candles later (by position) and the return to its close."""
    candles = pl.concat(
        raw.tables[f"ohlcv_{interval}"]
        .sort("symbol", "open_time")
        .select(
            "symbol",
            "open_time",
            "close",
            interval=pl.lit(interval),
            close_time=pl.col("open_time") + pl.duration(milliseconds=interval_ms(interval) - 1),
            horizon_close_time=(pl.col("open_time") + pl.duration(milliseconds=interval_ms(interval) - 1))
            .shift(-HORIZON)
            .over("symbol"),
            exit_price=pl.col("close").shift(-HORIZON).over("symbol"),
        )
        for interval in SUPPORTED_INTERVALS
    )
    side = pl.when(pl.col("side") == "buy").then(pl.lit("long")).otherwise(pl.lit("short"))
    return (
        raw.tables["candidates"]
        .drop("close_time", "price")
        .with_columns(side=side)
        .join(candles, on=["symbol", "interval", "open_time"])
        .with_columns(forward_return=_side_adjusted(pl.col("side"), pl.col("close"), pl.col("exit_price")))
    )


def test_sources_are_the_raw_tables_with_every_column():
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models" / "staging" / "sources.yml").read_text())["sources"]
    (raw,) = sources
    assert raw["schema"] == RAW_SCHEMA
    declared = {t["name"]: [c["name"] for c in t["columns"]] for t in raw["tables"]}
    assert declared == {name: list(table.columns) for name, table in RAW_TABLES.items()}


def test_the_build_ran_every_model_and_test_and_all_passed(built_warehouse):
    statuses = built_warehouse.build.statuses()
    models = {uid for uid in statuses if uid.startswith("model.")}
    tests = {uid for uid in statuses if uid.startswith("test.")}
    assert {uid.rsplit(".", 1)[1] for uid in models} >= {
        "mart_bars_hourly",
        "mart_bars_daily",
        "mart_features",
        "mart_candidate_outcomes",
        "mart_training_set",
        "mart_decision_outcomes",
        "mart_daily_performance",
    }
    assert any(".no_lookahead_mart_training_set" in uid for uid in tests)
    assert {uid: s for uid, s in statuses.items() if s not in ("success", "pass")} == {}
    # The data exercises every mart: candidates of every interval, acted and held decisions, fills.
    training = built_warehouse.query("select interval, count(*) as n from main.mart_training_set group by 1")
    assert set(training["interval"]) == set(SUPPORTED_INTERVALS)
    assert set(built_warehouse.raw.tables["decisions"]["action"]) == {"buy", "sell", "hold"}


def test_training_set_has_the_contract_columns_and_matches_polars(built_warehouse):
    mart = _mart(built_warehouse, "mart_training_set", ["candidate_id"])
    assert mart.columns == list(TRAINING_SCHEMA)  # the contract training reads (ml/dataset.py)
    fee = 2 * built_warehouse.fee_rate
    known = expected_outcomes(built_warehouse.raw).filter(pl.col("exit_price").is_not_null())
    expected = (
        known.join(built_warehouse.raw.tables["candidates"].select("candidate_id"), on="candidate_id")
        .select(
            "candidate_id",
            "strategy",
            "symbol",
            "interval",
            "signal",
            "side",
            "open_time",
            "close_time",
            pl.col("close").alias("price"),
            "horizon_close_time",
            "exit_price",
            "forward_return",
            label=pl.col("forward_return") > fee,
        )
        .sort("candidate_id")
    )
    assert mart.height == expected.height > 0
    assert mart.height < built_warehouse.raw.rows("candidates")  # the last candles' candidates wait
    assert_frame_equal(mart.select(expected.columns), expected, check_exact=False, rel_tol=1e-12)
    assert mart["label"].any() and not mart["label"].all()
    # Every feature is the fired candle's (the no_lookahead dbt test checks the same inside the warehouse).
    features = pl.concat(
        built_warehouse.raw.tables[f"features_{interval}"].with_columns(interval=pl.lit(interval))
        for interval in SUPPORTED_INTERVALS
    )
    fired = mart.select("candidate_id", "symbol", "interval", "open_time").join(
        features, on=["symbol", "interval", "open_time"], how="left"
    )
    assert_frame_equal(mart.select("candidate_id", *FEATURES), fired.select("candidate_id", *FEATURES))


def test_decision_outcomes_and_daily_performance_match_polars(built_warehouse):
    raw, fee = built_warehouse.raw, 2 * built_warehouse.fee_rate
    outcomes = expected_outcomes(raw).select("candidate_id", "exit_price")
    side = pl.col("action").replace_strict({"buy": "long", "sell": "short", "hold": None}, default=None)
    decisions = (
        raw.tables["decisions"]
        .join(outcomes, on="candidate_id", how="left")
        .with_columns(forward_return=_side_adjusted(side, pl.col("price"), pl.col("exit_price")))
        .with_columns(hit=pl.col("forward_return") > fee)
        .select(DECISION_OUTCOME_COLUMNS)
        .sort("decision_id")
    )
    mart = _mart(built_warehouse, "mart_decision_outcomes", ["decision_id"])
    assert mart.columns == DECISION_OUTCOME_COLUMNS
    assert_frame_equal(mart, decisions, check_exact=False, rel_tol=1e-12)
    assert mart.filter(pl.col("action") == "hold")["hit"].null_count() == mart.filter(pl.col("action") == "hold").height

    day = lambda column: pl.col(column).dt.date().alias("day")  # noqa: E731
    keys = ["day", "strategy"]
    per_day = [
        raw.tables["candidates"].group_by(day("close_time"), "strategy").agg(candidates=pl.len()),
        decisions.group_by(day("candle_close_time"), "strategy").agg(
            decisions=pl.len(),
            acted=pl.col("action").is_in(["buy", "sell"]).sum(),
            hit_rate=pl.col("hit").sum() / pl.col("hit").count(),
        ),
        raw.tables["orders"].group_by(day("created_at"), "strategy").agg(orders=pl.len()),
        raw.tables["fills"]
        .join(raw.tables["orders"].select("client_order_id", "strategy"), on="client_order_id")
        .group_by(day("filled_at"), "strategy")
        .agg(fills=pl.len(), paper_pnl=pl.col("realized_pnl").sum()),
    ]
    expected = per_day[0]
    for frame in per_day[1:]:
        expected = expected.join(frame, on=keys, how="full", coalesce=True)
    counts = ["candidates", "decisions", "acted", "orders", "fills", "paper_pnl"]
    expected = expected.with_columns(pl.col(counts).fill_null(0)).select(DAILY_PERFORMANCE_COLUMNS).sort(keys)
    performance = _mart(built_warehouse, "mart_daily_performance", keys)
    assert performance.columns == DAILY_PERFORMANCE_COLUMNS
    assert_frame_equal(performance, expected, check_exact=False, rel_tol=1e-9, check_dtypes=False)
    assert (performance["paper_pnl"] < 0).all()  # the test desk only pays fees


@pytest.mark.parametrize(("mart", "every"), [("mart_bars_daily", "1d"), ("mart_bars_hourly", "1h")])
def test_bars_match_polars_resampling_of_the_minutes(built_warehouse, mart, every):
    minutes = built_warehouse.raw.tables["ohlcv_1m"].sort("symbol", "open_time")
    expected = (
        minutes.group_by("symbol", pl.col("open_time").dt.truncate(every))
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume", "quote_volume", "trades").sum(),
            candles=pl.len(),
        )
        .sort("symbol", "open_time")
    )
    bars = _mart(built_warehouse, mart, ["symbol", "open_time"]).select(expected.columns)
    assert_frame_equal(bars, expected, check_exact=False, rel_tol=1e-9, check_dtypes=False)
    assert bars["candles"].max() == (1440 if every == "1d" else 60)


def test_the_no_lookahead_test_fails_when_training_rows_read_the_horizon_candles_features(built_warehouse, tmp_path):
    """A variant of the training set that joins the features of the label's candle (a leak) fails it."""
    project = tmp_path / "project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "marts" / "mart_training_set.sql"
    honest_join = "join {{ ref('int_features') }} as f on f.candle_key = o.candle_key"
    assert honest_join in model.read_text()
    leaky_join = (
        "join {{ ref('int_candles') }} as later on later.symbol = o.symbol and later.interval = o.interval"
        " and later.close_time = o.horizon_close_time\n"
        "join {{ ref('int_features') }} as f on f.candle_key = later.candle_key"
    )
    model.write_text(model.read_text().replace(honest_join, leaky_join))
    coin_home = tmp_path / "home"
    built_warehouse.copy_to(coin_home)
    leaked = run_dbt(
        ["build", "--select", "mart_training_set", "--full-refresh"], coin_home, tmp_path / "work", project
    )
    statuses = leaked.statuses()
    assert leaked.returncode != 0
    failed = {uid.split(".")[2] for uid, status in statuses.items() if status == "fail"}
    assert any(name.startswith("no_lookahead_mart_training_set") for name in failed), failed
    (result,) = [r for r in leaked.results["results"] if "no_lookahead" in r["unique_id"]]
    assert result["failures"] >= len(FEATURES)  # every leaked feature of a row is reported


def test_a_day_range_that_is_not_one_is_refused_naming_the_vars(built_warehouse, tmp_path):
    coin_home = tmp_path / "home"
    built_warehouse.copy_to(coin_home)
    first, last = built_warehouse.days()[2], built_warehouse.days()[1]
    refused = run_dbt(
        ["run", "--select", "mart_bars_daily", "--vars", json.dumps({"min_day": str(first), "max_day": str(last)})],
        coin_home,
        built_warehouse.work_dir,
    )
    assert refused.returncode != 0
    assert f"var min_day {first} is after max_day {last}" in refused.output
