"""Settings load once, typed, and an invalid value fails naming its key."""

import datetime as dt
from pathlib import Path

import pytest

from coin_platform.settings import PROJECT_ROOT, ConfigError, load_settings


def _settings(tmp_path: Path, config: str, **env: str):
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return load_settings({"COIN_CONFIG": str(path), "COIN_HOME": str(tmp_path / ".coin"), **env})


def test_the_repository_config_loads():
    settings = load_settings({"COIN_CONFIG": str(PROJECT_ROOT / "config.yaml")})
    assert settings.env == "local"
    assert settings.market_source == "binance"
    assert settings.config.intervals == ("1m", "15m", "1h")
    assert settings.s3_endpoint_url == f"http://127.0.0.1:{settings.config.local_stack.s3_port}"


def test_symbols_and_intervals_are_normalized(tmp_path):
    settings = _settings(
        tmp_path, "symbols: [btcusdt, ' EthUsdt']\nintervals: [1M, 1H]\nhistory_start: 2024-01-01\n"
    )
    assert settings.config.symbols == ("BTCUSDT", "ETHUSDT")
    assert settings.config.intervals == ("1m", "1h")
    assert settings.config.history_start == dt.date(2024, 1, 1)


def test_replay_source_points_the_market_client_at_the_replay_server(tmp_path):
    settings = _settings(
        tmp_path,
        "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n",
        MARKET_SOURCE="replay",
        REPLAY_URL="http://127.0.0.1:9999",
    )
    assert settings.market_base_url == "http://127.0.0.1:9999"


def test_secrets_do_not_print(tmp_path):
    settings = _settings(
        tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n", AWS_SECRET_ACCESS_KEY="s3cr3t-value"
    )
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    assert settings.aws_secret_access_key.get_secret_value() == "s3cr3t-value"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("symbols: []\nhistory_start: 2024-01-01\n", "config.yaml: symbols:"),
        ("symbols: [BTC-USDT]\nhistory_start: 2024-01-01\n", "config.yaml: symbols: .*'BTC-USDT'"),
        ("symbols: [BTCUSDT, btcusdt]\nhistory_start: 2024-01-01\n", "symbols: .*twice"),
        ("symbols: [BTCUSDT]\nintervals: [7m]\nhistory_start: 2024-01-01\n", "config.yaml: intervals: .*7m"),
        (
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nretention_days: 9\n",
            "config.yaml: retention_days:",
        ),
        ("symbols: [BTCUSDT]\nhistory_start: 2999-01-01\n", "config.yaml: history_start: .*future"),
        (
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nsymbol: [ETHUSDT]\n",
            "config.yaml: symbol: Extra inputs",
        ),
        (
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\ningestion: {max_partitions_per_run: 0}\n",
            "config.yaml: ingestion.max_partitions_per_run:",
        ),
        ("symbols: [BTCUSDT]\n", "config.yaml: history_start: Field required"),
        ("- just\n- a list\n", "must be a mapping"),
        ("symbols: [BTCUSDT\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, config)


@pytest.mark.parametrize(
    ("variable", "value"), [("COIN_PLATFORM_ENV", "staging"), ("MARKET_SOURCE", "kraken")]
)
def test_invalid_environment_names_the_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=f"environment: {variable}:"):
        _settings(tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n", **{variable: value})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nowhere.yaml"):
        load_settings({"COIN_CONFIG": str(tmp_path / "nowhere.yaml")})


_TRADING = "symbols: [BTCUSDT, ETHUSDT]\nhistory_start: 2024-01-01\ntrading: {%s}\n"


@pytest.mark.parametrize(
    ("trading", "key"),
    [
        ("risk: {max_position_notional_by_symbol: {BTCUSDT: .nan}}", "max_position_notional_by_symbol.BTCUSDT"),
        ("risk: {max_position_notional_by_symbol: {BTCUSDT: -5}}", "max_position_notional_by_symbol.BTCUSDT"),
        ("risk: {max_position_notional_by_symbol: {ETHUSDT: .inf}}", "max_position_notional_by_symbol.ETHUSDT"),
        ("risk: {max_position_quantity_by_symbol: {BTCUSDT: .nan}}", "max_position_quantity_by_symbol.BTCUSDT"),
        ("risk: {max_position_quantity_by_symbol: {BTCUSDT: 0}}", "max_position_quantity_by_symbol.BTCUSDT"),
        ("risk: {max_position_notional_usdt: .inf}", "max_position_notional_usdt"),
        ("risk: {max_position_notional_usdt: .nan}", "max_position_notional_usdt"),
        ("risk: {daily_loss_limit_usdt: .inf}", "daily_loss_limit_usdt"),
        ("risk: {daily_loss_limit_usdt: .nan}", "daily_loss_limit_usdt"),
        ("order_notional_usdt: .inf", "order_notional_usdt"),
        ("order_notional_usdt: .nan", "order_notional_usdt"),
        ("fee_rate: .nan", "fee_rate"),
        ("slippage_rate: .nan", "slippage_rate"),
        ("slippage_rate: -0.1", "slippage_rate"),
    ],
)
def test_a_trading_limit_that_is_not_a_finite_positive_number_fails_naming_it(tmp_path, trading, key):
    with pytest.raises(ConfigError, match=rf"config.yaml: trading\.(risk\.)?{key}:"):
        _settings(tmp_path, _TRADING % trading)


@pytest.mark.parametrize(
    ("limits", "key"),
    [
        ("max_position_notional_by_symbol: {SOLUSDT: 100}", "max_position_notional_by_symbol.SOLUSDT"),
        ("max_position_notional_by_symbol: {btcusdt: 100}", "max_position_notional_by_symbol.btcusdt"),
        ("max_position_quantity_by_symbol: {XRPUSDT: 1}", "max_position_quantity_by_symbol.XRPUSDT"),
    ],
)
def test_a_per_symbol_limit_must_name_a_configured_symbol(tmp_path, limits, key):
    with pytest.raises(ConfigError, match=rf"config.yaml: trading\.risk\.{key}: .*BTCUSDT, ETHUSDT"):
        _settings(tmp_path, _TRADING % f"risk: {{{limits}}}")


def test_finite_positive_per_symbol_limits_load(tmp_path):
    risk = _settings(
        tmp_path,
        _TRADING % "risk: {max_position_notional_by_symbol: {BTCUSDT: 2000}, max_position_quantity_by_symbol: "
        "{ETHUSDT: 1.5}}",
    ).config.trading.risk
    assert risk.max_position_notional_by_symbol == {"BTCUSDT": 2000.0}
    assert risk.max_position_quantity_by_symbol == {"ETHUSDT": 1.5}
