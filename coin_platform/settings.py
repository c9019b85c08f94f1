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
from typing import Literal

import yaml
from dotenv import load_dotenv
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from coin_platform.market.intervals import SUPPORTED_INTERVALS, normalize_interval

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BINANCE_FAPI_URL = "https://fapi.binance.com"
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


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


class PlatformConfig(_Strict):
    """The contents of config.yaml."""

    symbols: tuple[str, ...] = Field(min_length=1)
    intervals: tuple[str, ...] = ("1m", "15m", "1h")
    history_start: dt.date
    retention_days: int = Field(default=3, ge=1, le=3)
    cleaning: CleaningConfig = CleaningConfig()
    ingestion: IngestionConfig = IngestionConfig()
    local_stack: LocalStackConfig = LocalStackConfig()
    demo: DemoConfig = DemoConfig()

    @field_validator("symbols")
    @classmethod
    def _symbols_upper_and_unique(cls, symbols: tuple[str, ...]) -> tuple[str, ...]:
        normalized = tuple(s.strip().upper() for s in symbols)
        for symbol in normalized:
            if not SYMBOL_PATTERN.match(symbol):
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

    @field_validator("history_start")
    @classmethod
    def _not_in_future(cls, value: dt.date) -> dt.date:
        if value > dt.datetime.now(dt.UTC).date():
            raise ValueError(f"{value} is in the future")
        return value


class Settings(_Strict):
    """Everything the platform reads from config.yaml and the environment."""

    env: Literal["local", "prod"]
    market_source: Literal["binance", "replay"]
    config: PlatformConfig
    coin_home: Path
    binance_fapi_url: str
    replay_url: str
    s3_endpoint_url: str | None
    s3_bucket: str
    s3_region: str
    aws_access_key_id: str | None
    aws_secret_access_key: SecretStr | None

    @property
    def market_base_url(self) -> str:
        return self.replay_url if self.market_source == "replay" else self.binance_fapi_url


def _format_validation_error(source: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{source}: {key}: {item['msg']}")
    return "; ".join(problems)


def load_config(path: Path) -> PlatformConfig:
    """Parse and validate config.yaml, naming the key that is wrong."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name} must be a mapping of keys to values")
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path.name, exc)) from None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from `environ` (default: os.environ over the project's .env)."""
    if environ is None:
        # Export .env into the process (the environment wins), as `dagster dev` does,
        # so EnvVar-backed resource fields resolve the same values.
        load_dotenv(PROJECT_ROOT / ".env", override=False)
        environ = dict(os.environ)
    config_path = Path(environ.get("COIN_CONFIG", PROJECT_ROOT / "config.yaml"))
    config = load_config(config_path)
    coin_home = Path(environ.get("COIN_HOME", PROJECT_ROOT / ".coin"))
    env = environ.get("COIN_PLATFORM_ENV", "local")
    default_s3 = f"http://127.0.0.1:{config.local_stack.s3_port}" if env == "local" else None
    values = {
        "env": env,
        "market_source": environ.get("MARKET_SOURCE", "binance"),
        "config": config,
        "coin_home": coin_home,
        "binance_fapi_url": environ.get("BINANCE_FAPI_URL", BINANCE_FAPI_URL),
        "replay_url": environ.get(
            "REPLAY_URL", f"http://127.0.0.1:{config.local_stack.replay_port}"
        ),
        "s3_endpoint_url": environ.get("S3_ENDPOINT_URL", default_s3) or None,
        "s3_bucket": environ.get("S3_BUCKET", "coin-platform"),
        "s3_region": environ.get("AWS_REGION", "us-east-1"),
        "aws_access_key_id": environ.get("AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": environ.get("AWS_SECRET_ACCESS_KEY"),
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        names = {
            "env": "COIN_PLATFORM_ENV",
            "market_source": "MARKET_SOURCE",
        }
        message = _format_validation_error("environment", exc)
        for field, variable in names.items():
            message = message.replace(f"environment: {field}:", f"environment: {variable}:")
        raise ConfigError(message) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
