"""The history archive's check: an archive holds exactly the rows of the hourly objects of the days it took
from them (the public archive's days are its verified files')."""

import dagster as dg

from coin_platform.defs.archive.assets import last_closed_day
from coin_platform.defs.partitions import split_year_keys
from coin_platform.defs.resources import ObjectStoreResource
from coin_platform.pipeline.compaction import compare_with_hourly


def build_history_check(
    interval: str, history_asset: dg.AssetsDefinition, partitions_def: dg.MultiPartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=history_asset,
        name="equals_hourly_inputs",
        partitions_def=partitions_def,
        description=(
            "The archive holds exactly the rows of the hourly objects of the days it took from them; "
            "the days of its public archive files are checksum-verified when downloaded."
        ),
    )
    def equals_hourly_inputs(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        store = object_store.get_store()
        differing = {}
        compared = 0
        for year, symbol in split_year_keys(partitions_def, list(context.partition_keys)):
            if year > last_closed_day().year:
                continue
            comparison = compare_with_hourly(store, interval, symbol, year)
            compared += 1
            if not comparison.identical:
                differing[f"{symbol}|{year}"] = {
                    "archived_rows": comparison.archived,
                    "hourly_rows": comparison.expected,
                    "only_in_archive": comparison.only_in_archive,
                    "only_in_hourly": comparison.only_in_hourly,
                }
        return dg.AssetCheckResult(
            passed=not differing,
            description=(
                f"{compared} archive(s) equal their hourly inputs"
                if not differing
                else f"{len(differing)} of {compared} archive(s) differ from their hourly inputs"
            ),
            metadata={"archives_compared": compared, "differing": dg.MetadataValue.json(differing)},
        )

    return equals_hourly_inputs
