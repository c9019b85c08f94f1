"""One typed settings object from `config.yaml` plus the environment (and `.env`).

`config.yaml` holds what the platform does (symbols, intervals, history start,
retention); the environment holds where things are and who we are (endpoints,
credentials, `COIN_PLATFORM_ENV`, `MARKET_SOURCE`). Both are validated once, at
load time, and an invalid value fails with a message that names its key.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from dotenv import load_dotenv
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from coin_platform.core.intervals import SUPPORTED_INTERVALS, interval_ms, normalize_interval
from coin_platform.core.symbols import is_binance_symbol
from coin_platform.core.universe import UniverseFileError, read_universe
from coin_platform.ops.alerts import parse_smtp_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BINANCE_FAPI_URL = "https://fapi.binance.com"
BINANCE_TESTNET_URL = "https://testnet.binancefuture.com"
PUBLIC_ARCHIVE_URL = "https://data.binance.vision"
KAFKA_TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"
# What an HTTP header value can carry safely: printable ASCII, no spaces or line breaks.
API_KEY_PATTERN = re.compile(r"^[!-~]+$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CleaningConfig(_Strict):
    drop_zero_volume: bool = False


class IngestionConfig(_Strict):
    # How many (date, symbol) partitions one backfill run handles.
    max_partitions_per_run: int = Field(default=62, ge=1, le=1000)
    # Fraction of the published request-weight limit the client lets itself use.
    weight_budget_fraction: float = Field(default=0.95, gt=0.0, le=1.0)
    # Closed history (the history_* archives) from Binance's public kline archive; false: from REST only.
    public_archive: bool = True


class LocalStackConfig(_Strict):
    """Fixed loopback ports of `coin stack up`; SeaweedFS gRPC ports are these + 10000."""

    s3_port: int = Field(default=8333, ge=1024, le=55535)
    master_port: int = Field(default=9333, ge=1024, le=55535)
    volume_port: int = Field(default=8380, ge=1024, le=55535)
    filer_port: int = Field(default=8888, ge=1024, le=55535)
    kafka_port: int = Field(default=9092, ge=1024, le=65535)
    replay_port: int = Field(default=8765, ge=1024, le=65535)
    dagster_port: int = Field(default=3000, ge=1024, le=65535)


class DemoConfig(_Strict):
    days: int = Field(default=3, ge=1, le=31)


# The built-in strategy kinds; coin_platform.strategies has one class per kind (a test holds them equal).
StrategyKind = Literal["rsi_reversal", "ema_crossover", "macd_crossover", "volume_zone_breakout"]
STRATEGY_KINDS: tuple[str, ...] = get_args(StrategyKind)


class StrategyConfig(_Strict):
    """One configured strategy; `params` are checked against its kind by coin_platform.strategies."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    kind: StrategyKind
    enabled: bool = True
    # Intervals whose closed candles it evaluates; empty = every configured interval.
    intervals: tuple[str, ...] = ()
    params: dict[str, float | int | bool] = Field(default_factory=dict)

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, intervals: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_interval(i) for i in intervals)


class EventsConfig(_Strict):
    """Kafka topics and how often the sensors read them."""

    # Kafka's legal topic names; the dead-letter topic is a topic + the suffix.
    candidates_topic: str = Field(default="coin.candidates", pattern=KAFKA_TOPIC_PATTERN)
    decisions_topic: str = Field(default="coin.decisions", pattern=KAFKA_TOPIC_PATTERN)
    dead_letter_suffix: str = Field(default=".dlq", pattern=r"^[A-Za-z0-9._-]{1,40}$")
    # Candidates whose candle closed longer ago than this are recorded but not published
    # (a backfill of old days must not trade). At most 30 days: it is a freshness limit.
    publish_max_age_seconds: int = Field(default=900, ge=1, le=30 * 86_400)
    # How often the candidate sensor reads its topic: as often as the daemon allows by default, since each tick's
    # wait is on the way from a closed candle to its order (a tick with nothing new is one fetch from the broker).
    sensor_interval_seconds: int = Field(default=1, ge=1, le=3600)
    # Dagster's sensor daemon starts a sensor at most every 5 s whatever its interval. A tick that finds nothing new
    # waits this long on the topic for the first message (Kafka's long poll) and returns as soon as one arrives, so a
    # candidate becomes a run within a fraction of a second. Below 5 s, or the tick would overrun the next loop.
    sensor_wait_seconds: float = Field(default=4.0, ge=0.0, le=4.5)
    # Most messages one sensor tick turns into runs.
    max_messages_per_tick: int = Field(default=200, ge=1, le=10_000)

    @model_validator(mode="after")
    def _topics_apart(self) -> EventsConfig:
        """A dead-letter topic equal to a source topic would feed its own sensor."""
        sources = {"candidates_topic": self.candidates_topic, "decisions_topic": self.decisions_topic}
        if self.candidates_topic == self.decisions_topic:
            raise ValueError("candidates_topic and decisions_topic must differ")
        for name, topic in sources.items():
            for other, source in sources.items():
                if topic + self.dead_letter_suffix == source:
                    raise ValueError(f"dead_letter_suffix makes the dead-letter topic of {name} the {other}")
        return self


class InferenceConfig(_Strict):
    # Below this confidence a decision is `hold` (no order).
    min_confidence: float = Field(default=0.55, ge=0.0, le=1.0)


# A limit is a finite number above zero: every comparison with NaN is false, so a NaN limit
# would refuse nothing, and an infinite one is no limit either.
Limit = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, lt=0.1, allow_inf_nan=False)]


class RiskConfig(_Strict):
    """Checked before every order; any breach refuses the order with its reason."""

    kill_switch: bool = False
    max_position_notional_usdt: Limit = 1_000.0
    # Per-symbol overrides of the notional limit, e.g. {BTCUSDT: 2000}; keys are configured symbols.
    max_position_notional_by_symbol: dict[str, Limit] = Field(default_factory=dict)
    max_position_quantity_by_symbol: dict[str, Limit] = Field(default_factory=dict)
    daily_loss_limit_usdt: Limit = 200.0
    cooldown_seconds: int = Field(default=300, ge=0)


class TradingConfig(_Strict):
    broker: Literal["paper", "binance"] = "paper"
    order_notional_usdt: Limit = 100.0
    # A decision whose candle closed longer ago than this is refused at order time (rule stale_decision):
    # prices have moved on. 15 minutes fits 1m..1h candles; at most two days.
    max_decision_age_seconds: int = Field(default=900, ge=1, le=172_800)
    fee_rate: Rate = 0.001
    slippage_rate: Rate = 0.0002
    risk: RiskConfig = RiskConfig()


Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]


class BacktestConfig(_Strict):
    """Defaults of a backtest run (`backtest:` in config.yaml); a run's config overrides any of them.

    Costs default to the trading section's fee and slippage, so a backtest is charged what paper trading is.
    """

    # Candle interval and how many days up to the end a run covers when it names no range.
    interval: str = "15m"
    days: int = Field(default=30, ge=1, le=3660)
    initial_cash: Limit = 10_000.0
    # equity_fraction: `fraction` of the symbol's equity per entry; fixed_notional: trading.order_notional_usdt.
    sizing: Literal["equity_fraction", "fixed_notional"] = "equity_fraction"
    fraction: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)
    # Fractions of the entry price; none = no stop or target.
    stop_loss: Fraction | None = None
    take_profit: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    leverage: float = Field(default=1.0, ge=1, le=125, allow_inf_nan=False)
    # Charge USD-M funding from the funding_rates dataset.
    funding: bool = True

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, interval: str) -> str:
        normalized = normalize_interval(interval)
        if normalized not in SUPPORTED_INTERVALS:
            raise ValueError(f"{interval!r} not among {list(SUPPORTED_INTERVALS)}")
        return normalized


class ApiConfig(_Strict):
    """The HTTP API (`coin api`): loopback by default; in prod a bearer token (API_TOKEN) is required."""

    host: str = "127.0.0.1"
    port: int = Field(default=8800, ge=1024, le=65535)


# Five cron fields (minute hour day-of-month month day-of-week) of digits, *, /, - and commas.
CRON_PATTERN = r"^\s*[\d*/,-]+(\s+[\d*/,-]+){4}\s*$"


class BackupConfig(_Strict):
    """`coin backup` and the scheduled backup job: when it runs (cron, UTC) and how long backups are kept."""

    retention_days: int = Field(default=14, ge=1, le=3650)
    schedule: str = Field(default="0 3 * * *", pattern=CRON_PATTERN)


class HealthConfig(_Strict):
    """When the live edge counts as stale, and how long `coin health` waits for each component."""

    # An interval's live assets and newest candle are stale once older than this many intervals plus the grace
    # (1m: 3 minutes, 15m: 31 minutes, 1h: 2 hours 1 minute with the defaults).
    stale_after_intervals: int = Field(default=2, ge=1, le=100)
    stale_grace_seconds: int = Field(default=60, ge=0, le=86_400)
    # Each check of `coin health` answers within this, or is reported as not answering.
    check_timeout_seconds: float = Field(default=1.5, gt=0, le=60, allow_inf_nan=False)
    # A topic sensor further behind its topic than this many messages is lagging.
    max_sensor_lag_messages: int = Field(default=200, ge=0)
    # A Dagster daemon whose last heartbeat is older than this is down.
    daemon_heartbeat_tolerance_seconds: int = Field(default=60, ge=5, le=3600)
    # How often the freshness sensor looks for checks that may have gone stale.
    freshness_sensor_interval_seconds: int = Field(default=30, ge=5, le=3600)

    def stale_after(self, interval: str) -> dt.timedelta:
        """How old an `interval` asset or candle may get before it is stale."""
        return dt.timedelta(
            milliseconds=interval_ms(interval) * self.stale_after_intervals, seconds=self.stale_grace_seconds
        )


# Dagster's documented ceiling of partitions per asset (its UI and daemons walk them).
MAX_PARTITIONS_PER_ASSET = 100_000


class UniverseConfig(_Strict):
    """Which perpetuals `symbols: all` collects (market/universe.py applies it to exchangeInfo)."""

    quote_assets: tuple[str, ...] = Field(default=("USDT",), min_length=1)
    # Days since listing before a new perpetual is collected (its first days are thin and erratic).
    min_age_days: int = Field(default=30, ge=0, le=3650)
    exclude: tuple[str, ...] = ()

    @field_validator("quote_assets", "exclude")
    @classmethod
    def _upper(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in values)


class PlatformConfig(_Strict):
    """The contents of config.yaml."""

    # The symbols collected live. `symbols: all` in config.yaml fills them (and retired_symbols) from the
    # universe snapshot; symbols_from_exchange then says so.
    symbols: tuple[str, ...]
    # Symbols whose history is kept (partitions, archives, backtests) but that are no longer collected.
    retired_symbols: tuple[str, ...] = ()
    symbols_from_exchange: bool = False
    universe: UniverseConfig = UniverseConfig()
    intervals: tuple[str, ...] = ("1m", "15m", "1h")
    history_start: dt.date
    # The day × symbol partitions cover the last `day_partition_days` days (null: every day since
    # history_start). Closed history stays in the year × symbol history archives, so a large universe
    # keeps each asset's partitions within Dagster's guidance (300 symbols × 180 days = 54,000).
    day_partition_days: int | None = Field(default=None, ge=7, le=36_600)
    retention_days: int = Field(default=3, ge=1, le=3)
    cleaning: CleaningConfig = CleaningConfig()
    ingestion: IngestionConfig = IngestionConfig()
    local_stack: LocalStackConfig = LocalStackConfig()
    demo: DemoConfig = DemoConfig()
    strategies: tuple[StrategyConfig, ...] = ()
    events: EventsConfig = EventsConfig()
    inference: InferenceConfig = InferenceConfig()
    trading: TradingConfig = TradingConfig()
    backtest: BacktestConfig = BacktestConfig()
    api: ApiConfig = ApiConfig()
    backup: BackupConfig = BackupConfig()

    health: HealthConfig = HealthConfig()

    @field_validator("strategies")
    @classmethod
    def _unique_strategy_names(cls, strategies: tuple[StrategyConfig, ...]) -> tuple[StrategyConfig, ...]:
        names = [s.name for s in strategies]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"strategy names listed twice: {twice}")
        return strategies

    @field_validator("symbols", "retired_symbols")
    @classmethod
    def _symbols_upper_and_unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(s.strip().upper() for s in symbols)
        for symbol in normalized:
            if not is_binance_symbol(symbol):
                raise ValueError(f"{symbol!r} is not a Binance symbol like BTCUSDT")
        if len(set(normalized)) != len(normalized):
            raise ValueError("symbols are listed twice")
        return normalized

    @field_validator("intervals")
    @classmethod
    def _known_intervals(cls, intervals: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(normalize_interval(i) for i in intervals)
        unsupported = [i for i in normalized if i not in SUPPORTED_INTERVALS]
        if unsupported:
            raise ValueError(f"{unsupported} not among {list(SUPPORTED_INTERVALS)}")
        return normalized

    @property
    def all_symbols(self) -> tuple[str, ...]:
        """Every symbol with partitions: the live ones first, then the retired (a range over the live is one block)."""
        return self.symbols + self.retired_symbols

    @model_validator(mode="after")
    def _some_symbols(self) -> PlatformConfig:
        # Empty only while `coin universe refresh` writes the first snapshot (load_settings(bootstrap_universe=True)).
        if not self.symbols and not self.symbols_from_exchange:
            raise ValueError("symbols: list at least one symbol, or write `symbols: all`")
        return self

    @model_validator(mode="after")
    def _the_whole_market_fits_dagsters_partition_guidance(self) -> PlatformConfig:
        today = dt.datetime.now(dt.UTC).date()
        if self.symbols_from_exchange and self.day_partition_days is None:
            days = (today - self.history_start).days + 1
            if (count := len(self.all_symbols) * days) > MAX_PARTITIONS_PER_ASSET:
                raise ValueError(
                    f"day_partition_days: symbols: all is {len(self.all_symbols)} symbols × {days} days = {count:,} "
                    f"partitions per asset, more than the {MAX_PARTITIONS_PER_ASSET:,} Dagster recommends; set "
                    "day_partition_days (e.g. 180: closed history stays in the yearly history archives)"
                )
        return self

    @model_validator(mode="after")
    def _retired_not_live(self) -> PlatformConfig:
        if both := sorted(set(self.symbols) & set(self.retired_symbols)):
            raise ValueError(f"retired_symbols: {both} are also in symbols; a symbol is live or retired")
        return self

    @model_validator(mode="after")
    def _per_symbol_limits_name_configured_symbols(self) -> PlatformConfig:
        risk = self.trading.risk
        for name in ("max_position_notional_by_symbol", "max_position_quantity_by_symbol"):
            for symbol in getattr(risk, name):
                if symbol not in self.symbols:
                    raise ValueError(
                        f"trading.risk.{name}.{symbol}: {symbol!r} is not a configured symbol "
                        f"({', '.join(self.symbols)}); symbols are upper-case, e.g. BTCUSDT"
                    )
        return self

    def first_partition_day(self, today: dt.date) -> dt.date:
        """The first day of the day × symbol partitions on `today`."""
        if self.day_partition_days is None:
            return self.history_start
        return max(self.history_start, today - dt.timedelta(days=self.day_partition_days - 1))

    @field_validator("history_start")
    @classmethod
    def _not_in_future(cls, value: dt.date) -> dt.date:
        if value > dt.datetime.now(dt.UTC).date():
            raise ValueError(f"{value} is in the future")
        return value


# COIN_PLATFORM_ENV: which deployment's resources the code location gets (defs/resources.RESOURCES).
Deployment = Literal["local", "prod"]
DEPLOYMENTS: tuple[str, ...] = get_args(Deployment)


class Settings(_Strict):
    """Everything the platform reads from config.yaml and the environment."""

    env: Deployment
    market_source: Literal["binance", "replay"]
    config: PlatformConfig
    coin_home: Path
    binance_fapi_url: str
    binance_archive_url: str
    replay_url: str
    s3_endpoint_url: str | None
    s3_bucket: str
    s3_region: str
    aws_access_key_id: str | None
    aws_secret_access_key: SecretStr | None
    kafka_bootstrap_servers: str
    # Order endpoint base URL (Binance testnet or live); orders never go to the market-data replay
    # server unless this points at it.
    binance_order_url: str
    binance_api_key: SecretStr | None
    binance_api_secret: SecretStr | None
    live_trading: bool
    alert_slack_webhook_url: SecretStr | None
    alert_email_to: str | None
    smtp_url: SecretStr | None

    @field_validator("binance_api_key", "binance_api_secret")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        """The key goes into a header and the query signature: a stray newline or space breaks both."""
        if value is not None and not API_KEY_PATTERN.match(value.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces or line breaks (the value is not shown)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked at load time, so the failure sensor never trips over (and never prints) it."""
        if value is not None:
            parse_smtp_url(value.get_secret_value())
        return value

    @property
    def api_token_required(self) -> bool:
        """The HTTP API refuses to serve without API_TOKEN in prod (locally it is loopback-only by default)."""
        return self.env == "prod"

    @property
    def market_base_url(self) -> str:
        return self.replay_url if self.market_source == "replay" else self.binance_fapi_url

    @property
    def archive_base_url(self) -> str:
        """Binance's public kline archive, or the replay server's copy of it."""
        return self.replay_url if self.market_source == "replay" else self.binance_archive_url

    # The local stores under COIN_HOME: the code location's resources and `coin health` read the same paths.
    @property
    def stores_on_disk(self) -> bool:
        """Locally the hot store is chDB at hot_store_path and the warehouse the DuckDB file at warehouse_path
        (defs/resources.local_resources); in prod they are a ClickHouse server and Snowflake."""
        return self.env == "local"

    @property
    def hot_store_path(self) -> Path:
        """The chDB directory of the local hot store."""
        return self.coin_home / "clickhouse" / "hot"

    @property
    def universe_path(self) -> Path:
        return universe_path(self.coin_home)

    @property
    def trading_store_path(self) -> Path:
        return self.coin_home / "trading" / "trading.duckdb"

    @property
    def warehouse_path(self) -> Path:
        """The local warehouse's DuckDB file."""
        return self.coin_home / "warehouse" / "warehouse.duckdb"


def universe_path(coin_home: Path) -> Path:
    """The universe snapshot `symbols: all` resolves against (core/universe.py), beside the local stores."""
    return coin_home / "universe" / "usdm_perpetuals.json"


def _format_validation_error(source: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if not key and item["type"] == "value_error":  # a check across keys, whose message names its key
            problems.append(f"{source}: {item['msg'].removeprefix('Value error, ')}")
            continue
        problems.append(f"{source}: {key or '(top level)'}: {item['msg']}")
    return "; ".join(problems)


ALL_SYMBOLS = "all"


def _symbols_from_universe(raw: dict[str, Any], name: str, universe_path: Path | None, bootstrap: bool) -> None:
    """`symbols: all` -> the live and retired symbols of the universe snapshot (written by `coin universe refresh`
    or the usdm_universe asset); with `bootstrap`, none yet when it is not written."""
    if "symbols_from_exchange" in raw:
        raise ConfigError(f"{name}: symbols_from_exchange is set by `symbols: all`, not by hand")
    if raw.get("symbols") != ALL_SYMBOLS:
        return
    if raw.get("retired_symbols"):
        raise ConfigError(f"{name}: retired_symbols: with symbols: all the universe snapshot retires symbols")
    snapshot = None
    if universe_path is not None:
        try:
            snapshot = read_universe(universe_path)
        except UniverseFileError as exc:
            raise ConfigError(f"{name}: symbols: all: {exc}") from None
    if snapshot is None and not bootstrap:
        raise ConfigError(
            f"{name}: symbols: all needs the universe snapshot, which is not written yet: run "
            "`coin universe refresh` (make dev and make demo do), or list the symbols"
        )
    if snapshot is not None and not snapshot.live and not bootstrap:
        raise ConfigError(f"{name}: symbols: all: no perpetual passes the universe filter (universe:)")
    raw["symbols"] = list(snapshot.live) if snapshot else []
    raw["retired_symbols"] = list(snapshot.retired) if snapshot else []
    raw["symbols_from_exchange"] = True


def load_config(path: Path, universe_path: Path | None = None, *, bootstrap_universe: bool = False) -> PlatformConfig:
    """Parse and validate config.yaml, naming the key that is wrong; `symbols: all` reads the universe snapshot
    at `universe_path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the path, not UTF-8
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML: {exc}") from exc
    except ValueError as exc:  # a date or time YAML parses but Python cannot hold: 2024-02-30, year 0
        raise ConfigError(f"{path.name} has an impossible date or time: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path.name} is nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name} must be a mapping of keys to values")
    _symbols_from_universe(raw, path.name, universe_path, bootstrap_universe)
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path.name, exc)) from None


# --- secrets as files, and prod refusing the example values -------------------------------------
# Each may come from a file named by <NAME>_FILE instead (compose/Kubernetes secrets), so its value
# never sits in the container's environment definition. (Dagster's instance reads its PostgreSQL
# password before any of this runs: the image's entrypoint, deploy/entrypoint.sh, exports that one.)
SECRET_VARIABLES: tuple[str, ...] = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    "ALERT_SLACK_WEBHOOK_URL",
    "SMTP_URL",
    "API_TOKEN",
    "CLICKHOUSE_PASSWORD",
    "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
)
# The values .env.example ships (the local stack's own S3 identity): anyone who read the repository
# knows them, so prod refuses them (a test holds this equal to .env.example).
EXAMPLE_VALUES: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "coin-local",
    "AWS_SECRET_ACCESS_KEY": "coin-local-secret",
}


def read_secret_files(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with every secret whose <NAME>_FILE is set read from that file (one trailing line
    break dropped). An empty file leaves the secret unset: compose mounts every declared secret, so
    an unused one (say, Binance keys with the paper broker) is an empty file. Setting both NAME and
    NAME_FILE is refused: which one wins would be a guess."""
    resolved = dict(environ)
    for name in SECRET_VARIABLES:
        file_variable = f"{name}_FILE"
        path = environ.get(file_variable)
        if not path:
            continue
        if environ.get(name):
            raise ConfigError(f"environment: both {name} and {file_variable} are set; keep one")
        try:
            value = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # missing, a directory, no permission, not UTF-8
            raise ConfigError(f"environment: {file_variable}: {path} cannot be read ({type(exc).__name__})") from None
        value = value.removesuffix("\n").removesuffix("\r")
        if value:
            resolved[name] = value
    return resolved


def refuse_example_values(environ: dict[str, str]) -> None:
    """Prod must not run with credentials published in .env.example; the message names the variable only."""
    for name, example in EXAMPLE_VALUES.items():
        if environ.get(name) == example:
            raise ConfigError(
                f"environment: {name} holds the example value of .env.example, which prod refuses: "
                "set a credential of your own (see deploy/README.md)"
            )


def load_settings(environ: dict[str, str] | None = None, *, bootstrap_universe: bool = False) -> Settings:
    """Build Settings from `environ` (default: os.environ over the project's .env).

    `bootstrap_universe`: with `symbols: all` and no universe snapshot yet, load with no symbols (for the
    refresh that writes the first one) instead of refusing.

    Secrets named by <NAME>_FILE are read first; for the process environment they are exported too,
    so EnvVar-backed resource fields (resolved from os.environ at run time) see them.
    """
    if environ is None:
        # Export .env into the process (the environment wins), as `dagster dev` does,
        # so EnvVar-backed resource fields resolve the same values.
        load_dotenv(PROJECT_ROOT / ".env", override=False)
        environ = read_secret_files(dict(os.environ))
        os.environ.update({name: environ[name] for name in SECRET_VARIABLES if name in environ})
    else:
        environ = read_secret_files(environ)
    if environ.get("COIN_PLATFORM_ENV") == "prod":
        refuse_example_values(environ)
    config_path = Path(environ.get("COIN_CONFIG", PROJECT_ROOT / "config.yaml"))
    coin_home = Path(environ.get("COIN_HOME", PROJECT_ROOT / ".coin"))
    config = load_config(config_path, universe_path(coin_home), bootstrap_universe=bootstrap_universe)
    env = environ.get("COIN_PLATFORM_ENV", "local")
    default_s3 = f"http://127.0.0.1:{config.local_stack.s3_port}" if env == "local" else None
    values = {
        "env": env,
        "market_source": environ.get("MARKET_SOURCE", "binance"),
        "config": config,
        "coin_home": coin_home,
        "binance_fapi_url": environ.get("BINANCE_FAPI_URL", BINANCE_FAPI_URL),
        "binance_archive_url": environ.get("BINANCE_ARCHIVE_URL", PUBLIC_ARCHIVE_URL),
        "replay_url": environ.get("REPLAY_URL", f"http://127.0.0.1:{config.local_stack.replay_port}"),
        "s3_endpoint_url": environ.get("S3_ENDPOINT_URL", default_s3) or None,
        "s3_bucket": environ.get("S3_BUCKET", "coin-platform"),
        "s3_region": environ.get("AWS_REGION", "us-east-1"),
        "aws_access_key_id": environ.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": environ.get("AWS_SECRET_ACCESS_KEY"),
        "kafka_bootstrap_servers": environ.get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{config.local_stack.kafka_port}"),
        "binance_order_url": environ.get("BINANCE_ORDER_URL", BINANCE_TESTNET_URL),
        "binance_api_key": environ.get("BINANCE_API_KEY") or None,
        "binance_api_secret": environ.get("BINANCE_API_SECRET") or None,
        "live_trading": environ.get("LIVE_TRADING", "0"),
        "alert_slack_webhook_url": environ.get("ALERT_SLACK_WEBHOOK_URL") or None,
        "alert_email_to": environ.get("ALERT_EMAIL_TO") or None,
        "smtp_url": environ.get("SMTP_URL") or None,
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        message = _format_validation_error("environment", exc)
    # Raised outside the handler: the ValidationError quotes every input, secrets included,
    # and must not travel along as the ConfigError's __context__.
    names = {
        "env": "COIN_PLATFORM_ENV",
        "market_source": "MARKET_SOURCE",
        "live_trading": "LIVE_TRADING",
        "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
        "binance_order_url": "BINANCE_ORDER_URL",
        "binance_api_key": "BINANCE_API_KEY",
        "binance_api_secret": "BINANCE_API_SECRET",
        "smtp_url": "SMTP_URL",
    }
    for field, variable in names.items():
        message = message.replace(f"environment: {field}:", f"environment: {variable}:")
    raise ConfigError(message)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
