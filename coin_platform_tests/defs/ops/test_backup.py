"""The scheduled backup job in a Dagster test instance, on the local deployment's resources and real SeaweedFS."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from coin_platform.backup.archive import list_backups, read_manifest, restore_backup
from coin_platform.defs.ops.backup import BACKUP_JOB, backup_parts, build_backup_job
from coin_platform.defs.resources import ClickHouseResource, TradingDesk, WarehouseResource, build_resources
from coin_platform.settings import PROJECT_ROOT, load_settings
from coin_platform.trading.orders import OrderRequest
from coin_platform_tests.defs.harness import market_settings, object_store
from coin_platform_tests.trading.support import NOW, make_decision


def test_the_backup_job_backs_up_the_stores_and_its_own_instance(tmp_path, seaweedfs, s3_bucket):
    settings = market_settings(
        tmp_path, "http://127.0.0.1:9", seaweedfs, s3_bucket, config={"backup": {"retention_days": 7}}
    )
    resources = build_resources(settings)
    job, schedule = build_backup_job(settings)
    defs = dg.Definitions(jobs=[job], schedules=[schedule], resources=resources)
    decision = make_decision("BTCUSDT")
    with resources["trading_store"].get_store().transaction() as tx:
        tx.record_pending(
            decision, OrderRequest(decision.id, "BTCUSDT", "buy", 0.01, False, 50_000.0), broker="paper", created_at=NOW
        )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = defs.resolve_job_def(BACKUP_JOB).execute_in_process(instance=instance)
        assert result.success
        backup_id = result.output_for_node("backup_state")

    store = object_store(settings)
    assert list_backups(store) == [backup_id]
    manifest = read_manifest(store, backup_id)
    assert manifest["included"]["trading_store"]["tables"]["main.orders"] == 1
    # The backup ran inside the instance it backed up: its own run is in the copied run storage.
    assert "history/runs.db" in manifest["included"]["dagster"]["files"]
    assert set(manifest["excluded"]) == {"warehouse", "hot_store"}

    parts, left_out = backup_parts(
        resources["trading_store"], resources["clickhouse"], resources["warehouse"], dagster_home
    )
    assert left_out == {}
    resources["trading_store"].store_path.unlink()
    restore_backup(store, parts, backup_id)
    assert resources["trading_store"].get_store().orders()["client_order_id"].to_list() == [decision.id]
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        assert result.run_id in [run.run_id for run in instance.get_runs()]


def test_the_schedule_runs_the_job_at_the_configured_time(tmp_path, seaweedfs, s3_bucket):
    settings = market_settings(
        tmp_path, "http://127.0.0.1:9", seaweedfs, s3_bucket, config={"backup": {"schedule": "30 2 * * *"}}
    )
    job, schedule = build_backup_job(settings)
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == ("30 2 * * *", "UTC", "backup")
    tick = dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    assert [request.job_name or job.name for request in schedule.evaluate_tick(context).run_requests] == ["backup"]


class SnowflakeLike(WarehouseResource):
    """A warehouse that is not a DuckDB file, as Snowflake is in prod."""

    def get_warehouse(self, holder: str = ""):
        raise AssertionError("a backup never opens a warehouse it does not copy")


def test_a_clickhouse_server_and_a_snowflake_warehouse_are_named_as_left_out(tmp_path):
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"), "COIN_HOME": str(tmp_path)})
    parts, left_out = backup_parts(
        TradingDesk.from_settings(settings), ClickHouseResource(mode="server", host="ch"), SnowflakeLike(), tmp_path
    )
    assert [part.name for part in parts] == ["trading_store", "dagster"]
    assert sorted(left_out) == ["hot_store", "warehouse"]
    assert "ClickHouse server" in left_out["hot_store"] and "Snowflake" in left_out["warehouse"]
