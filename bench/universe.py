"""Partition-scale benchmark: what the Dagster UI and daemons pay for the partitions at today's size and at the
whole USD-M universe (300 symbols × 10 years), with every day since the history start partitioned and with
the day partitions limited to the last `day_partition_days` (closed history in the year × symbol archives).

For each scale a config.yaml with that many symbols and that history start is written, and the code
location is loaded the way the webserver loads it (a gRPC code server for workspace.yaml's module, on
a temporary Dagster instance whose storage is PostgreSQL as in deploy/dagster.yaml, durable, on Debian's
server started for the bench; `--instance sqlite` for `make dev`'s). Measured, in seconds:

  definitions_build_s    `build_definitions` and the repository snapshot the code server sends, in this process
                         (the project and Dagster already imported)
  definitions_load_s     the code location loaded by a new code server process, imports included (the UI
                         waits for it at start and on every reload)
  list_partitions_s      `partitions_def.get_partition_keys()` of ohlcv_1m, in the code location's process
  partition_status_s     the UI's partition-health GraphQL query for ohlcv_1m (keys by dimension and the
                         materialized/failed status of every partition), with `--materialized` days of
                         every symbol recorded as materialized first
  automation_tick_s      one evaluation of every automation condition after the `--materialized` days of every
                         symbol arrived (what the automation sensor's tick runs then)
  backfill_tick_s        one backfill daemon iteration over a new backfill of every partition of history_1m
                         (runs are queued, not launched), with one "materialization planned" event per asset and
                         run as the deployments write them (`--planned-events per_partition`: Dagster's default)

The reference is today's scale in the same process; the goal is every number under 2 s at the universe
scale (the automation and backfill ticks under 10 s), Dagster's guidance being at most 100,000 partitions
per asset.

    python bench/universe.py                           # today (3 × 2 years) and the universe (300 × 10 years), twice
    python bench/universe.py --symbols 100 --years 4 --json-out result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import define_out_of_process_workspace, execute_dagster_graphql
from report import emit  # bench/report.py, beside this script

from coin_platform.local.dev import PLANNED_EVENTS_PER_RUN
from coin_platform.local.stack.postgres import PostgresServer, running_postgres
from coin_platform.settings import PROJECT_ROOT

TODAY_SCALE = (3, 2)
ASSET = "ohlcv_1m"
BACKFILLED = "history_1m"  # a universe backfill: every year × symbol from the public archive
QUEUED_RUNS = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
        ... on TimePartitionStatuses { ranges { status startKey endKey } }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey
            primaryDimEndKey
            secondaryDim {
              ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
              ... on TimePartitionStatuses { ranges { status startKey endKey } }
            }
          }
        }
      }
    }
  }
}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300, help="symbols of the universe scale (default 300)")
    parser.add_argument("--years", type=int, default=10, help="years of history of the universe scale (default 10)")
    parser.add_argument("--window", type=int, default=180, help="day_partition_days of the windowed universe (180)")
    parser.add_argument("--materialized", type=int, default=3, help="newest days recorded as materialized per symbol")
    parser.add_argument(
        "--instance",
        choices=("sqlite", "postgres"),
        default="postgres",
        help="the Dagster instance's storage: postgres (deploy/dagster.yaml's, durable) or sqlite (`make dev`'s)",
    )
    parser.add_argument(
        "--scales",
        default="today,universe_every_day,universe_windowed",
        help="which of today, universe_every_day, universe_windowed to measure (comma-separated)",
    )
    parser.add_argument(
        "--planned-events",
        choices=("per_run", "per_partition"),
        default="per_run",
        help="per_run as coin dev, compose and Helm set it (local/dev.py PLANNED_EVENTS_PER_RUN), or Dagster's default",
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def universe_symbols(count: int) -> list[str]:
    """`count` distinct USDT perpetual names (the replay makes a market for any of them)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"{letters[n // 676 % 26]}{letters[n // 26 % 26]}{letters[n % 26]}USDT" for n in range(count)]


def write_config(folder: Path, symbols: list[str], years: int, window: int | None) -> Path:
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    today = dt.datetime.now(dt.UTC).date()
    config["symbols"] = symbols
    config["history_start"] = today.replace(year=today.year - years).isoformat()
    config["day_partition_days"] = window
    config["trading"]["risk"].pop("max_position_notional_by_symbol", None)
    config["trading"]["risk"].pop("max_position_quantity_by_symbol", None)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def record_materializations(instance: dg.DagsterInstance, partitions_def, days: int) -> int:
    """The newest `days` days of every symbol recorded as materializations of ASSET, as runs would."""
    today = dt.datetime.now(dt.UTC).date()
    dates = {(today - dt.timedelta(days=n)).isoformat() for n in range(days)}
    keys = [key for key in partitions_def.get_partition_keys() if key.keys_by_dimension["date"] in dates]
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=ASSET, partition=key))
    return len(keys)


def instance_overrides(postgres: PostgresServer | None) -> dict:
    """Runs only queued; the storage of deploy/dagster.yaml on `postgres` (a database of its own), else SQLite."""
    if postgres is None:
        return QUEUED_RUNS
    database = {
        "username": postgres.user,
        "password": postgres.password,
        "hostname": postgres.host,
        "db_name": postgres.create_database(),
        "port": postgres.port,
        "scheme": "postgresql+psycopg2",  # as deploy/dagster.yaml: the driver dagster-postgres installs
    }
    return QUEUED_RUNS | {"storage": {"postgres": {"postgres_db": database}}}


def measure(
    symbols: list[str],
    years: int,
    window: int | None,
    materialized_days: int,
    workdir: Path,
    postgres: PostgresServer | None,
) -> dict:
    os.environ["COIN_CONFIG"] = str(write_config(workdir, symbols, years, window))
    os.environ["COIN_HOME"] = str(workdir / ".coin")
    from coin_platform.definitions import build_definitions
    from coin_platform.settings import load_settings

    started = time.perf_counter()
    defs = build_definitions(load_settings())
    RepositorySnap.from_def(defs.get_repository_def())
    built = time.perf_counter() - started
    asset = defs.resolve_assets_def(ASSET)
    started = time.perf_counter()
    partition_count = len(asset.partitions_def.get_partition_keys())
    listed = time.perf_counter() - started
    (workdir / "dagster").mkdir()
    overrides = instance_overrides(postgres)
    with dg.instance_for_test(temp_dir=str(workdir / "dagster"), overrides=overrides) as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the sensor's cursor
        recorded = record_materializations(instance, asset.partitions_def, materialized_days)
        started = time.perf_counter()
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        tick = time.perf_counter() - started
        started = time.perf_counter()
        with define_out_of_process_workspace(str(PROJECT_ROOT / "workspace.yaml"), None, instance) as process:
            context = process.create_request_context()
            context.get_code_location("coin_platform").get_repositories()
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            result = execute_dagster_graphql(context, PARTITION_HEALTH_QUERY, {"assetKey": {"path": [ASSET]}})
            status = time.perf_counter() - started
            if result.errors:
                raise RuntimeError(f"partition health query failed: {result.errors}")
            backfill = backfill_tick(instance, process, context)
    return {
        "symbols": len(symbols),
        "years": years,
        "day_partition_days": window,
        "partitions_per_asset": partition_count,
        "materialized_recorded": recorded,
        "definitions_build_s": round(built, 2),
        "definitions_load_s": round(loaded, 2),
        "list_partitions_s": round(listed, 2),
        "partition_status_s": round(status, 2),
        "automation_tick_s": round(tick, 2),
        "automation_requested": evaluation.total_requested,
        **backfill,
    }


def backfill_tick(instance: dg.DagsterInstance, process, context) -> dict:
    """One backfill daemon iteration over a backfill of every partition of BACKFILLED (runs only queued)."""
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id="bench",
        asset_graph=context.asset_graph,
        partition_names=None,
        asset_selection=[dg.AssetKey(BACKFILLED)],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=True,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    started = time.perf_counter()
    list(execute_backfill_iteration(process, logging.getLogger("bench.universe")))
    return {
        "backfill_asset": BACKFILLED,
        "backfill_tick_s": round(time.perf_counter() - started, 2),
        "backfill_runs_submitted": instance.get_runs_count(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.simplefilter("ignore")
    for name, value in PLANNED_EVENTS_PER_RUN.items():
        if args.planned_events == "per_run":
            os.environ[name] = value
        else:
            os.environ.pop(name, None)
    results = {}
    scales = {
        "today": (*TODAY_SCALE, None),
        "universe_every_day": (args.symbols, args.years, None),
        "universe_windowed": (args.symbols, args.years, args.window),
    }
    stdout = os.dup(1)
    os.dup2(2, 1)  # the code servers this starts inherit stdout and log to it: stdout is for the JSON alone
    try:
        with running_postgres(durable=True) if args.instance == "postgres" else nullcontext() as postgres:
            for name, (symbols, years, window) in scales.items():
                if name not in args.scales.split(","):
                    continue
                with tempfile.TemporaryDirectory(prefix=f"coin-bench-universe-{name}-") as temporary:
                    results[name] = measure(
                        universe_symbols(symbols), years, window, args.materialized, Path(temporary), postgres
                    )
    finally:
        os.dup2(stdout, 1)
        os.close(stdout)
    universe = results.get("universe_windowed")
    return emit(
        {
            "bench": "universe",
            "reference": f"the same measurements at today's scale ({TODAY_SCALE[0]} symbols × {TODAY_SCALE[1]} years)",
            "params": {
                "asset": ASSET,
                "materialized_days_per_symbol": args.materialized,
                "instance": args.instance,
                "planned_events": args.planned_events,
            },
            **results,
            "goal_met": universe is not None
            and all(universe[k] < 2 for k in ("definitions_build_s", "list_partitions_s", "partition_status_s"))
            and universe["automation_tick_s"] < 10
            and universe["backfill_tick_s"] < 10,
        },
        args.json_out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
