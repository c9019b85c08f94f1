"""usdm_universe: the perpetuals `symbols: all` collects, refreshed from exchangeInfo every day.

Only defined with `symbols: all`. A listing or a delisting changes the symbol partitions and the live
schedules, which Dagster reads when the code location loads: the materialization says what changed
and that the location needs a reload (Deployment → Reload, or a restart) to act on it.
"""

import datetime as dt

import dagster as dg

from coin_platform.defs.resources import BinanceResource
from coin_platform.pipeline.universe import refresh_universe
from coin_platform.settings import Settings

UNIVERSE_ASSET = "usdm_universe"
UNIVERSE_JOB = "refresh_universe"
# Listings are announced days ahead and take effect at any hour; once a day, after the day's compaction starts.
UNIVERSE_CRON = "20 0 * * *"


def build_universe_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        name=UNIVERSE_ASSET,
        group_name="market",
        kinds={"binance", "json"},
        description=(
            "The USD-M perpetuals collected live (TRADING, quote asset, minimum age and exclusions of "
            "config.yaml's `universe:`), and the retired ones whose history is kept, as the snapshot "
            "file `symbols: all` resolves against."
        ),
    )
    def usdm_universe(context: dg.AssetExecutionContext, binance: BinanceResource) -> dg.MaterializeResult:
        with binance.get_client() as client:
            universe, change = refresh_universe(
                client, settings.universe_path, settings.config.universe, dt.datetime.now(dt.UTC)
            )
        loaded = set(settings.config.symbols)
        pending = set(universe.live) != loaded
        if pending:
            context.log.warning(
                f"the universe changed (added {list(change.added)}, retired {list(change.retired)}, "
                f"back {list(change.returned)}): reload the code location to collect it"
            )
        rows = "\n".join(
            f"| {m.symbol} | {m.quote_asset} | {m.onboard_date} | {m.status} | {m.retired_on or ''} |"
            for m in universe.members
        )
        return dg.MaterializeResult(
            metadata={
                "live_symbols": len(universe.live),
                "retired_symbols": len(universe.retired),
                "added": dg.MetadataValue.json(list(change.added)),
                "retired": dg.MetadataValue.json(list(change.retired)),
                "returned": dg.MetadataValue.json(list(change.returned)),
                "reload_needed": pending,
                "members": dg.MetadataValue.md(
                    "| symbol | quote | listed | status | retired on |\n|---|---|---|---|---|\n" + rows
                ),
            }
        )

    return usdm_universe


def build_universe_job(asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        name=UNIVERSE_JOB,
        selection=dg.AssetSelection.assets(asset),
        executor_def=dg.in_process_executor,
        description="Refresh the universe snapshot from exchangeInfo.",
    )


def build_universe_schedule(job) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="universe_schedule",
        job=job,
        cron_schedule=UNIVERSE_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Refreshes the universe snapshot every day (listings and delistings).",
    )
