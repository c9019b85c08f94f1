"""Helpers to build settings for real components and run jobs in process."""

import warnings
from pathlib import Path

import dagster as dg
import yaml

from coin_platform.settings import Settings, load_settings
from coin_platform.storage.object_store import ObjectStore


def market_settings(
    tmp_path: Path,
    market_url: str,
    s3,
    bucket: str,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    intervals: tuple[str, ...] = ("1m", "15m", "1h"),
    *,
    config: dict | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Settings for the replay server at `market_url` and a bucket on the SeaweedFS fixture
    (`config` adds config.yaml keys, `environ` environment variables)."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {"symbols": list(symbols), "intervals": list(intervals), "history_start": "2024-01-01", **(config or {})}
        )
    )
    return load_settings(
        {
            "COIN_CONFIG": str(path),
            "COIN_HOME": str(tmp_path / ".coin"),
            "MARKET_SOURCE": "replay",
            "REPLAY_URL": market_url,
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "S3_BUCKET": bucket,
            "AWS_REGION": s3.region,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            **(environ or {}),
        }
    )


def object_store(settings: Settings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


def run_job(
    defs: dg.Definitions,
    job_name: str,
    *,
    tags: dict[str, str],
    run_config: dict | None = None,
    asset_selection: list[str] | None = None,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        tags=tags,
        run_config=run_config,
        instance=instance or dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(name) for name in asset_selection] if asset_selection else None,
        raise_on_error=raise_on_error,
    )


def run_checks(
    defs: dg.Definitions, asset_name: str, tags: dict[str, str], *, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """Run only the checks of one asset's partitions (given as range tags) against what is stored.

    A failed blocking check fails its step: pass raise_on_error=False to read its evaluation.
    """
    asset = defs.get_assets_def(asset_name)
    with warnings.catch_warnings():
        # A checks-only selection has no asset to infer the partitions from.
        warnings.simplefilter("ignore", DeprecationWarning)
        job = dg.define_asset_job(
            f"check_{asset_name}",
            selection=dg.AssetSelection.checks_for_assets(asset),
            partitions_def=asset.partitions_def,
        )
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return merged.resolve_job_def(job.name).execute_in_process(
        tags=tags, instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error
    )


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
