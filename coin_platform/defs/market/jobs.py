"""ingest_funding: the funding rates of a day × symbol range, one job (the funding schedule's target).

The candle jobs, `ingest_{interval}`, span four domains and are built in coin_platform.defs.jobs."""

import dagster as dg

FUNDING_JOB = "ingest_funding"


def build_funding_job(funding_asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        name=FUNDING_JOB,
        selection=dg.AssetSelection.assets(funding_asset),
        executor_def=dg.in_process_executor,
        description="Fetch and store the funding rates, and check them, for a day × symbol range.",
    )
