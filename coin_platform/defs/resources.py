"""Resources: configuration holders that hand domain objects (clients, stores) to assets.

Assets never know which deployment they run in. `RESOURCES` maps each deployment
(COIN_PLATFORM_ENV: local, prod) to its resources, the dbt target included, and
`build_resources` makes the one lookup.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from pydantic import SecretStr

from coin_platform.binance.weights import WeightLimiter
from coin_platform.events.kafka import Message, ensure_topics, make_producer, read_from
from coin_platform.market.client import BinanceFuturesClient
from coin_platform.market.public_archive import PublicArchiveClient
from coin_platform.settings import PROJECT_ROOT, Deployment, Settings
from coin_platform.storage.clickhouse import ClickHouseConfig, HotStore, open_hot_store
from coin_platform.storage.object_store import ObjectStore
from coin_platform.storage.warehouse import DuckDBWarehouse, Warehouse
from coin_platform.trading.binance import BinanceFuturesBroker
from coin_platform.trading.orders import Broker
from coin_platform.trading.paper import PaperBroker, PriceSource
from coin_platform.trading.store import TradingStore


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


class PublicArchiveResource(dg.ConfigurableResource):
    """Binance's public kline archive (or the replay's copy), where closed history comes from; off: REST only."""

    base_url: str
    enabled: bool = True

    def get_client(self) -> PublicArchiveClient | None:
        return PublicArchiveClient(self.base_url) if self.enabled else None


class ObjectStoreResource(dg.ConfigurableResource):
    """The object store: an S3 bucket (SeaweedFS locally and in the compose stack, or S3)."""

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


# The Dagster concurrency pool of every asset, check and op that opens the hot store
# (limit 1 locally: chDB allows one process per path).
CLICKHOUSE_POOL = "clickhouse"


class ClickHouseResource(dg.ConfigurableResource):
    """The hot store: chDB on disk (local) or a ClickHouse server over HTTP (prod).

    `open()` hands out a `HotStore`, migrated to `retention_days` once per process.
    """

    mode: str = "chdb"
    path: str | None = None
    host: str = "localhost"
    port: int = 8123
    user: str = "default"
    password: str | None = None
    secure: bool = False
    database: str = "coin"
    retention_days: int = 3
    lock_timeout_s: float = 600.0

    def get_config(self) -> ClickHouseConfig:
        return ClickHouseConfig(
            mode=self.mode,  # type: ignore[arg-type]
            path=self.path,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            secure=self.secure,
            database=self.database,
            lock_timeout_s=self.lock_timeout_s,
        )

    @contextlib.contextmanager
    def open(self) -> Iterator[HotStore]:
        """The hot store for the block (chDB: under the path's file lock), closed afterwards;
        migrated on the process's first open of this target."""
        with open_hot_store(self.get_config(), self.retention_days) as store:
            yield store


# The Dagster concurrency pool of every warehouse load (limit 1 locally: DuckDB allows one writing
# process per file). Loads that read the hot store still wait on its file lock (CLICKHOUSE_POOL is theirs).
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse of the deployment; assets ask it for the domain `Warehouse` and never learn which."""

    @abc.abstractmethod
    def get_warehouse(self, holder: str = "") -> Warehouse:
        """The warehouse; `holder` (e.g. the run) is what a waiting DuckDB writer is told holds the file."""


class DuckDBWarehouseResource(WarehouseResource):
    """Locally: the DuckDB file of dagster-duckdb's DuckDBResource, written under the warehouse's writer lock."""

    duckdb: DuckDBResource
    lock_timeout_s: float = 600.0

    def get_warehouse(self, holder: str = "") -> DuckDBWarehouse:
        return DuckDBWarehouse(
            self.duckdb.database,
            lock_timeout_s=self.lock_timeout_s,
            config=self.duckdb.connection_config,
            holder=holder,
        )


class KafkaResource(dg.ConfigurableResource):
    """Kafka (tansu locally, Apache Kafka in prod) through kafka-python."""

    bootstrap_servers: str

    def ensure_topics(self, topics: list[str]) -> list[str]:
        return ensure_topics(self.bootstrap_servers, topics)

    @contextlib.contextmanager
    def producer(self) -> Iterator[object]:
        """An idempotent acks=all producer for the block, flushed and closed afterwards."""
        producer = make_producer(self.bootstrap_servers)
        try:
            yield producer
        finally:
            producer.close()

    def read(
        self, topic: str, position: dict[int, int], max_messages: int, wait_seconds: float = 0.0
    ) -> tuple[list[Message], dict[int, int]]:
        return read_from(
            self.bootstrap_servers, topic, position, max_messages=max_messages, wait_ms=int(wait_seconds * 1000)
        )


@dataclass(frozen=True)
class TradingDesk:
    """Where orders, fills and positions are kept (a DuckDB file) and which broker places orders.

    Deliberately not a ConfigurableResource: its fields would be run config, and a run config
    (launchpad, GraphQL) could then name another order URL, broker, keys, store or LIVE_TRADING.
    Everything here is fixed when the code location loads its settings from its own environment.
    """

    store_path: Path
    broker: Literal["paper", "binance"]
    fee_rate: float
    slippage_rate: float
    order_url: str
    api_key: SecretStr | None
    api_secret: SecretStr | None
    live_trading: bool
    # Orders may go to a loopback test endpoint (the replay server) — only in replay mode.
    allow_test_endpoint: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> TradingDesk:
        trading = settings.config.trading
        return cls(
            store_path=settings.trading_store_path,
            broker=trading.broker,
            fee_rate=trading.fee_rate,
            slippage_rate=trading.slippage_rate,
            order_url=settings.binance_order_url,
            api_key=settings.binance_api_key,
            api_secret=settings.binance_api_secret,
            live_trading=settings.live_trading,
            allow_test_endpoint=settings.market_source == "replay",
        )

    def get_store(self) -> TradingStore:
        return TradingStore(self.store_path)

    def get_broker(self, store: TradingStore, price_source: PriceSource) -> Broker:
        """The paper broker (fills at `price_source`), or Binance — testnet unless LIVE_TRADING=1."""
        if self.broker == "paper":
            return PaperBroker(store, price_source, fee_rate=self.fee_rate, slippage_rate=self.slippage_rate)
        return BinanceFuturesBroker(
            self.order_url,
            self.api_key,
            self.api_secret,
            live_trading=self.live_trading,
            allow_test_endpoint=self.allow_test_endpoint,
            commission_rate=self.fee_rate,
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


# The dbt project: beside the package in a checkout; an installed package (deploy/Dockerfile) names its copy.
DBT_PROJECT_DIR = Path(os.environ.get("COIN_DBT_PROJECT_DIR", str(PROJECT_ROOT / "dbt_snowflake")))
# The dbt installed beside this interpreter, as `coin dev` runs its dagster: a venv need not be on PATH.
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"


def dbt_resource(target: str) -> DbtCliResource:
    """dbt on the project with the profile's output `target` (dbt_snowflake/profiles.yml), fixed by the
    deployment. The profile's own default target follows COIN_PLATFORM_ENV too, so `dbt` run by hand agrees."""
    return DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=target,
        dbt_executable=str(DBT_EXECUTABLE),
    )


def _shared_resources(settings: Settings) -> dict[str, object]:
    """What is the same in every deployment: the endpoints themselves come from the settings."""
    return {
        "binance": BinanceResource(
            base_url=settings.market_base_url,
            source=settings.market_source,
            weight_budget_fraction=settings.config.ingestion.weight_budget_fraction,
        ),
        "public_archive": PublicArchiveResource(
            base_url=settings.archive_base_url, enabled=settings.config.ingestion.public_archive
        ),
        "object_store": ObjectStoreResource(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=_secret(settings.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        ),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka_bootstrap_servers),
        # A plain object, which Dagster serves as is: no run config reaches it.
        "trading_store": TradingDesk.from_settings(settings),
    }


def local_resources(settings: Settings) -> dict[str, object]:
    """The local stack: chDB on disk under COIN_HOME, the dbt target `local` (DuckDB)."""
    return _shared_resources(settings) | {
        "clickhouse": ClickHouseResource(
            mode="chdb",
            path=str(settings.hot_store_path),
            retention_days=settings.config.retention_days,
        ),
        "dbt": dbt_resource("local"),
        "warehouse": DuckDBWarehouseResource(
            duckdb=DuckDBResource(database=str(settings.warehouse_path)),
        ),
    }


def prod_resources(settings: Settings) -> dict[str, object]:
    """Prod: a ClickHouse server from CLICKHOUSE_* variables, the dbt target `prod` (Snowflake), and the
    Snowflake warehouse from SNOWFLAKE_* variables (key-pair)."""
    from coin_platform.defs.snowflake import KeyPairSnowflakeResource, SnowflakeWarehouseResource, snowflake_key_pair

    shared = _shared_resources(settings)
    return shared | {
        "clickhouse": ClickHouseResource(
            mode="server",
            host=dg.EnvVar("CLICKHOUSE_HOST"),
            port=int(os.environ.get("CLICKHOUSE_PORT", "8443")),
            user=dg.EnvVar("CLICKHOUSE_USER"),
            password=dg.EnvVar("CLICKHOUSE_PASSWORD"),
            secure=os.environ.get("CLICKHOUSE_SECURE", "true").lower() in ("1", "true", "yes"),
            database=os.environ.get("CLICKHOUSE_DB", "coin_platform"),
            retention_days=settings.config.retention_days,
        ),
        "dbt": dbt_resource("prod"),
        "warehouse": SnowflakeWarehouseResource(
            snowflake=KeyPairSnowflakeResource(
                account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
                user=dg.EnvVar("SNOWFLAKE_USER"),
                role=os.environ.get("SNOWFLAKE_ROLE", "LOADER"),
                warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
                database=dg.EnvVar("SNOWFLAKE_DATABASE"),
                timezone="UTC",
                **snowflake_key_pair(dict(os.environ)),
            ),
            object_store=shared["object_store"],
            storage_integration=os.environ.get("SNOWFLAKE_STORAGE_INTEGRATION") or None,
        ),
    }


# The one place the deployment is decided (COIN_PLATFORM_ENV -> settings.env), as in
# dagster's project_fully_featured: one map from deployment name to its resources.
RESOURCES: dict[Deployment, Callable[[Settings], dict[str, object]]] = {
    "local": local_resources,
    "prod": prod_resources,
}


def build_resources(settings: Settings) -> dict[str, object]:
    """The resources of the active deployment."""
    return RESOURCES[settings.env](settings)


def build_clickhouse_resource(settings: Settings) -> ClickHouseResource:
    """The active deployment's hot store (for tools outside the code location, e.g. bench/)."""
    return build_resources(settings)["clickhouse"]  # type: ignore[return-value]
