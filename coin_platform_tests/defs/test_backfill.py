"""What a user clicks: Assets → ohlcv_1m → Materialize… → a date range, all symbols.

The backfill goes through the same machinery as in the UI: the UI first asks
GraphQL `assetNodeAdditionalRequiredKeys` for the selection and, when that names
assets (a multi-asset that cannot be subset), shows a dialog whose Confirm adds
them; then it sends `launchPartitionBackfill`. The backfill daemon's iterations
launch the runs (in process) until the backfill is done.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._utils.log import get_dagster_logger
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from coin_platform.storage.layout import raw_klines_key
from coin_platform.storage.ohlcv import read_ohlcv_day
from coin_platform_tests.defs.harness import market_settings, object_store

DAYS = [dt.date(2024, 3, 10), dt.date(2024, 3, 11)]
SYMBOLS = ("BTCUSDT", "SOLUSDT")
LOCATION = Path(__file__).with_name("backfill_location.py")
ADDITIONAL_REQUIRED_KEYS_QUERY = """
query AdditionalRequired($assetKeys: [AssetKeyInput!]!) {
  assetNodeAdditionalRequiredKeys(assetKeys: $assetKeys) { path }
}
"""


def _environment(tmp_path, replay_url, s3, bucket) -> dict[str, str]:
    """The environment under which `backfill_location.py` builds the code location."""
    settings = market_settings(tmp_path, replay_url, s3, bucket, symbols=SYMBOLS, intervals=("1m",))
    return {
        "COIN_CONFIG": str(tmp_path / "config.yaml"),
        "COIN_HOME": str(settings.coin_home),
        "MARKET_SOURCE": "replay",
        "REPLAY_URL": replay_url,
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": bucket,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }


def test_a_backfill_of_ohlcv_alone_fetches_and_cleans(tmp_path, monkeypatch, replay_server, seaweedfs, s3_bucket):
    for name, value in _environment(tmp_path, replay_server.url, seaweedfs, s3_bucket).items():
        monkeypatch.setenv(name, value)
    settings = market_settings(tmp_path, replay_server.url, seaweedfs, s3_bucket, symbols=SYMBOLS, intervals=("1m",))
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(python_file=str(LOCATION), attribute="defs", working_directory=str(tmp_path)),
            location_name="coin_platform",
        )
    )
    launcher = {"module": "dagster._core.launcher.sync_in_memory_run_launcher", "class": "SyncInMemoryRunLauncher"}
    # Runs start as soon as the backfill submits them, each to completion, in this process.
    coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    with (
        instance_for_test(overrides={"run_launcher": launcher, "run_coordinator": coordinator}) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        partitions = [f"{day.isoformat()}|{symbol}" for day in DAYS for symbol in SYMBOLS]
        selection = [{"path": ["ohlcv_1m"]}]
        required = execute_dagster_graphql(
            workspace.create_request_context(), ADDITIONAL_REQUIRED_KEYS_QUERY, {"assetKeys": selection}
        ).data["assetNodeAdditionalRequiredKeys"]
        # Fetching and cleaning are one step: the dialog names the raw klines, Confirm adds them.
        assert required == [{"path": ["raw_klines_1m"]}]
        selection += required
        result = execute_dagster_graphql(
            workspace.create_request_context(),
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            {"backfillParams": {"partitionNames": partitions, "assetSelection": selection}},
        )
        launched = result.data["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        for _ in range(20):
            list(execute_backfill_iteration(workspace, get_dagster_logger("BackfillDaemon")))
            backfill = instance.get_backfill(backfill_id)
            if backfill.status != BulkActionStatus.REQUESTED:
                break
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        failures = [
            (event.dagster_event.step_failure_data.error.cause or event.dagster_event.step_failure_data.error).message
            for run in runs
            if run.status != dg.DagsterRunStatus.SUCCESS
            for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]
        assert failures == []
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
        assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        for asset in ("raw_klines_1m", "ohlcv_1m"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(partitions)

    store = object_store(settings)
    for day in DAYS:
        for symbol in SYMBOLS:
            assert store.exists(raw_klines_key("1m", symbol, day))
            frame = read_ohlcv_day(store, "1m", symbol, day)
            assert frame.height == 1440
            assert frame["open_time"].min() == dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
