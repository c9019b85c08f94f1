"""Resources: configuration holders that hand domain objects to assets.

Assets never know which deployment they run in; `build_resources` picks the
endpoints from the settings (local stack or prod services).
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import SecretStr

from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.rate_limit import WeightLimiter
from coin_platform.settings import Settings
from coin_platform.storage.object_store import ObjectStore


class BinanceResource(dg.ConfigurableResource):
    """Binance USD-M market data, or the replay server speaking the same API."""

    base_url: str
    source: str
    weight_budget_fraction: float = 0.95
    limiter_enabled: bool = True

    def get_client(self) -> BinanceFuturesClient:
        """A client that has adopted the exchange's published weight limit and clock offset."""
        limiter = WeightLimiter(fraction=self.weight_budget_fraction, enabled=self.limiter_enabled)
        client = BinanceFuturesClient(self.base_url, limiter=limiter)
        client.exchange_info()
        client.sync_clock()
        return client


class ObjectStoreResource(dg.ConfigurableResource):
    """The object store: an S3 bucket (SeaweedFS locally, S3/MinIO in prod)."""

    bucket: str = "coin-platform"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def get_store(self) -> ObjectStore:
        return ObjectStore.s3(
            self.bucket,
            endpoint_url=self.endpoint_url,
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            region=self.region,
        )


def _secret(value: SecretStr | None, variable: str) -> str | dg.EnvVar | None:
    """Pass secrets as EnvVar so the UI shows the variable's name, never its value.

    Settings built from an explicit mapping (tests, benches) may hold another
    value than the process environment; that value is passed as is.
    """
    if value is None:
        return None
    secret = value.get_secret_value()
    return dg.EnvVar(variable) if os.environ.get(variable) == secret else secret


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "binance": BinanceResource(
            base_url=settings.market_base_url,
            source=settings.market_source,
            weight_budget_fraction=settings.config.ingestion.weight_budget_fraction,
        ),
        "object_store": ObjectStoreResource(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=_secret(settings.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        ),
    }
