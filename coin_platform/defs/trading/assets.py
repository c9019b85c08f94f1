"""The trading domain's assets: `decisions`, `orders` and `positions`, reported by the runs that trade."""

from collections.abc import Sequence

import dagster as dg

from coin_platform.settings import Settings

DECISIONS_ASSET = dg.AssetKey("decisions")
ORDERS_ASSET = dg.AssetKey("orders")
POSITIONS_ASSET = dg.AssetKey("positions")


def trading_specs(settings: Settings, candidates: Sequence[dg.AssetsDefinition]) -> list[dg.AssetSpec]:
    """The three assets, downstream of the candidates_{interval} that trade_job runs act on."""
    events = settings.config.events
    broker = settings.config.trading.broker
    return [
        dg.AssetSpec(
            DECISIONS_ASSET,
            group_name="trading",
            # The candidates reach trade_job through Kafka, one run per message; the lineage is real.
            deps=[c.key for c in candidates],
            kinds={"duckdb", "kafka"},
            description=(
                "Decisions (buy / sell / hold, confidence, model version, inputs) of trade_job runs, in the trading "
                f"store; buy/sell ones are published to Kafka `{events.decisions_topic}` for audit and other consumers."
            ),
        ),
        dg.AssetSpec(
            ORDERS_ASSET,
            group_name="trading",
            deps=[DECISIONS_ASSET],
            kinds={"duckdb"},
            description=f"Orders ({broker} broker): one materialization per decision handled, with its status, "
            "reason, fills, fees and the risk verdict.",
        ),
        dg.AssetSpec(
            POSITIONS_ASSET,
            group_name="trading",
            deps=[ORDERS_ASSET],
            kinds={"duckdb"},
            description="The book after each order: positions, realized and unrealized PnL, fees.",
        ),
    ]
