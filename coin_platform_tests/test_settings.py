"""Settings load once, typed, and an invalid value fails naming its key."""

import datetime as dt
import os
from pathlib import Path

import pytest

from coin_platform.settings import PROJECT_ROOT, ConfigError, load_settings
from coin_platform_tests.leaks import assert_secret_absent


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
    settings = _settings(tmp_path, "symbols: [btcusdt, ' EthUsdt']\nintervals: [1M, 1H]\nhistory_start: 2024-01-01\n")
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


def test_the_day_partitions_start_at_the_history_start_or_the_window_whichever_is_later(tmp_path):
    every_day = _settings(tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n").config
    windowed = _settings(tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nday_partition_days: 30\n").config
    today = dt.date(2026, 12, 2)
    assert every_day.first_partition_day(today) == dt.date(2024, 1, 1)
    assert windowed.first_partition_day(today) == dt.date(2026, 11, 3)  # 30 days, today included
    assert windowed.first_partition_day(dt.date(2024, 1, 10)) == dt.date(2024, 1, 1)


def test_replay_sources_point_the_archive_client_at_the_replay_server_too(tmp_path):
    config = "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n"
    assert _settings(tmp_path, config).archive_base_url == "https://data.binance.vision"
    assert (
        _settings(tmp_path, config, BINANCE_ARCHIVE_URL="http://127.0.0.1:1").archive_base_url == "http://127.0.0.1:1"
    )
    replay = _settings(tmp_path, config, MARKET_SOURCE="replay", REPLAY_URL="http://127.0.0.1:9999")
    assert replay.archive_base_url == "http://127.0.0.1:9999"


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
        ("symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nday_partition_days: 3\n", "config.yaml: day_partition_days:"),
        ("- just\n- a list\n", "must be a mapping"),
        ("symbols: [BTCUSDT\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, config)


@pytest.mark.parametrize(("variable", "value"), [("COIN_PLATFORM_ENV", "staging"), ("MARKET_SOURCE", "kraken")])
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


BASE = "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n"


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("{publish_max_age_seconds: 1000000000000000}", "config.yaml: events.publish_max_age_seconds:"),
        ("{publish_max_age_seconds: 0}", "config.yaml: events.publish_max_age_seconds:"),
        ("{dead_letter_suffix: ''}", "config.yaml: events.dead_letter_suffix:"),
        ("{dead_letter_suffix: ' bad'}", "config.yaml: events.dead_letter_suffix:"),
        (
            "{candidates_topic: coin.c, decisions_topic: coin.c.dlq}",
            "config.yaml: events: .*dead_letter_suffix makes the dead-letter topic of candidates_topic "
            "the decisions_topic",
        ),
        ("{candidates_topic: coin.x, decisions_topic: coin.x}", "config.yaml: events: .*must differ"),
        ("{candidates_topic: 'coin candidates'}", "config.yaml: events.candidates_topic:"),
        ("{sensor_interval_seconds: 1000000000000000}", "config.yaml: events.sensor_interval_seconds:"),
        ("{max_messages_per_tick: 1000000000000000}", "config.yaml: events.max_messages_per_tick:"),
    ],
)
def test_invalid_events_config_names_the_key(tmp_path, events, message):
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, f"{BASE}events: {events}\n")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("smtp://alerts:s3cr/et@mail.example.com:587", "the port is not a number"),
        ("smtp://alerts:s3cr/et@mail.example.com", "the port is not a number"),
        ("smtp://alerts/s3cret@mail.example.com:587", "path, query or fragment after the host"),
        ("smtp://alerts:s3cret@mail.example.com:99999", "the port is not a number"),
        ("http://alerts:s3cret@mail.example.com:587", "must start with smtp:// or smtps://"),
        ("smtp://alerts:s3cret@:587", "has no host"),
        ("smtp://alerts:s3cret@mail.example.com:587\r\n", "whitespace, a control or a non-ASCII character"),
        ("smtp://alerts:s3cret@[mail.example.com:587", "not a URL"),
    ],
)
def test_a_bad_smtp_url_is_named_without_any_part_of_it(tmp_path, url, problem):
    with pytest.raises(ConfigError, match=f"environment: SMTP_URL: .*{problem}") as error:
        _settings(tmp_path, BASE, SMTP_URL=url)
    assert_secret_absent(error.value, "s3cr", "alerts", "mail.example", "587", "99999")


def test_a_percent_encoded_smtp_url_loads(tmp_path):
    settings = _settings(tmp_path, BASE, SMTP_URL="smtps://ops%40example.com:s3cr%2Fet@mail.example.com:465")
    assert settings.smtp_url.get_secret_value().startswith("smtps://")


@pytest.mark.parametrize("variable", ["BINANCE_API_KEY", "BINANCE_API_SECRET"])
@pytest.mark.parametrize(
    "value", ["vmPUZE6mv9SD5\r\nX-Injected: 1", "vmPUZE6mv9SD5 trailing", "vmPUZE6mv9SD5é", "\tvmPUZE6mv9SD5"]
)
def test_an_api_key_that_cannot_go_in_a_header_is_named_not_shown(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=f"environment: {variable}: .*printable ASCII") as error:
        _settings(tmp_path, BASE, **{variable: value})
    assert_secret_absent(error.value, "vmPUZE6mv9SD5", "X-Injected")


@pytest.mark.parametrize(
    ("backtest", "key"),
    [
        ("{interval: 7m}", "backtest.interval"),
        ("{leverage: 0.5}", "backtest.leverage"),
        ("{leverage: 126}", "backtest.leverage"),
        ("{stop_loss: 1.5}", "backtest.stop_loss"),
        ("{take_profit: .nan}", "backtest.take_profit"),
        ("{fraction: 0}", "backtest.fraction"),
        ("{sizing: all_in}", "backtest.sizing"),
        ("{initial_cash: -1}", "backtest.initial_cash"),
        ("{days: 0}", "backtest.days"),
        ("{risk: 1}", "backtest.risk"),
    ],
)
def test_a_bad_backtest_default_fails_naming_its_key(tmp_path, backtest, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _settings(tmp_path, f"symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nbacktest: {backtest}\n")


def test_backtest_defaults_and_the_api_port_load(tmp_path):
    config = _settings(
        tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nbacktest: {interval: 1H, leverage: 5}\n"
    ).config
    assert (config.backtest.interval, config.backtest.leverage, config.backtest.sizing) == (
        "1h",
        5.0,
        "equity_fraction",
    )
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8800)


@pytest.mark.parametrize(
    ("backup", "key"),
    [
        ("{retention_days: 0}", "backup.retention_days"),
        ("{schedule: 'every night'}", "backup.schedule"),
        ("{schedule: '0 3 * *'}", "backup.schedule"),
        ("{bucket: other}", "backup.bucket"),
    ],
)
def test_a_bad_backup_setting_fails_naming_its_key(tmp_path, backup, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _settings(tmp_path, f"symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nbackup: {backup}\n")


def test_the_backup_defaults_are_two_weeks_at_three_in_the_night(tmp_path):
    backup = _settings(tmp_path, "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n").config.backup
    assert (backup.retention_days, backup.schedule) == (14, "0 3 * * *")


# --- secrets as files; prod refuses the example values ------------------------------------------

_MINIMAL_CONFIG = "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\n"


def test_a_secret_is_read_from_its_file(tmp_path):
    secret_file = tmp_path / "binance_api_secret"
    secret_file.write_text("file-held-secret\n")
    settings = _settings(tmp_path, _MINIMAL_CONFIG, BINANCE_API_SECRET_FILE=str(secret_file))
    assert settings.binance_api_secret.get_secret_value() == "file-held-secret"


def test_a_secret_set_both_ways_is_refused(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("value-in-file")
    with pytest.raises(ConfigError, match="both BINANCE_API_SECRET and BINANCE_API_SECRET_FILE") as caught:
        _settings(
            tmp_path, _MINIMAL_CONFIG, BINANCE_API_SECRET="value-in-env", BINANCE_API_SECRET_FILE=str(secret_file)
        )
    assert_secret_absent(caught.value, "value-in-file", "value-in-env")


def test_a_missing_secret_file_fails_naming_its_variable(tmp_path):
    with pytest.raises(ConfigError, match="CLICKHOUSE_PASSWORD_FILE: .*clickhouse_password cannot be read"):
        _settings(tmp_path, _MINIMAL_CONFIG, CLICKHOUSE_PASSWORD_FILE=str(tmp_path / "clickhouse_password"))


def test_an_empty_secret_file_leaves_the_secret_unset(tmp_path):
    secret_file = tmp_path / "binance_api_key"
    secret_file.write_text("\n")
    assert _settings(tmp_path, _MINIMAL_CONFIG, BINANCE_API_KEY_FILE=str(secret_file)).binance_api_key is None


def _example_environment() -> dict[str, str]:
    from dotenv import dotenv_values

    return {name: value for name, value in dotenv_values(PROJECT_ROOT / ".env.example").items() if value}


def test_prod_refuses_the_credentials_of_env_example_without_echoing_them(tmp_path):
    example = _example_environment()
    assert example["AWS_SECRET_ACCESS_KEY"], ".env.example no longer ships an S3 secret; drop this test's premise"
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID holds the example value") as caught:
        _settings(tmp_path, _MINIMAL_CONFIG, **example | {"COIN_PLATFORM_ENV": "prod"})
    assert_secret_absent(caught.value, example["AWS_ACCESS_KEY_ID"], example["AWS_SECRET_ACCESS_KEY"])
    # The same file is what the local stack runs on.
    assert _settings(tmp_path, _MINIMAL_CONFIG, **example).aws_access_key_id == example["AWS_ACCESS_KEY_ID"]


def test_prod_refuses_an_example_value_that_came_from_a_secret_file(tmp_path):
    secret_file = tmp_path / "aws_secret_access_key"
    secret_file.write_text(_example_environment()["AWS_SECRET_ACCESS_KEY"] + "\n")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY holds the example value"):
        _settings(
            tmp_path,
            _MINIMAL_CONFIG,
            COIN_PLATFORM_ENV="prod",
            AWS_ACCESS_KEY_ID="prod-user",
            AWS_SECRET_ACCESS_KEY_FILE=str(secret_file),
        )


def test_every_credential_env_example_ships_is_one_prod_refuses():
    from coin_platform.settings import EXAMPLE_VALUES, SECRET_VARIABLES

    shipped = {name: value for name, value in _example_environment().items() if name in SECRET_VARIABLES}
    assert shipped == EXAMPLE_VALUES


def test_secrets_from_files_reach_the_process_environment_for_dagster_env_vars(tmp_path, monkeypatch):
    """Resources name secrets as dg.EnvVar, resolved from os.environ when a run starts."""
    secret_file = tmp_path / "clickhouse_password"
    secret_file.write_text("ch-secret\n")
    (tmp_path / "config.yaml").write_text(_MINIMAL_CONFIG)
    monkeypatch.setenv("COIN_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("CLICKHOUSE_PASSWORD_FILE", str(secret_file))
    monkeypatch.delenv("CLICKHOUSE_PASSWORD", raising=False)
    load_settings()
    assert os.environ["CLICKHOUSE_PASSWORD"] == "ch-secret"


def _snapshot(home: Path, live: tuple[str, ...], retired: tuple[str, ...] = ()) -> None:
    from coin_platform.core.universe import Member, Universe, write_universe
    from coin_platform.settings import universe_path

    day = dt.date(2020, 1, 1)
    members = [Member(s, "USDT", day, "TRADING") for s in live] + [
        Member(s, "USDT", day, "DELISTED", day) for s in retired
    ]
    write_universe(universe_path(home), Universe(tuple(members)))


def test_symbols_all_without_a_snapshot_fails_naming_the_command_that_writes_it(tmp_path):
    with pytest.raises(ConfigError, match="symbols: all needs the universe snapshot.*coin universe refresh"):
        _settings(tmp_path, "symbols: all\nhistory_start: 2024-01-01\n")


def test_symbols_all_loads_the_live_members_sorted_then_the_retired_ones(tmp_path):
    _snapshot(tmp_path / ".coin", live=("SOLUSDT", "BTCUSDT"), retired=("LUNAUSDT",))
    config = _settings(
        tmp_path, "symbols: all\nuniverse: {quote_assets: [usdt], min_age_days: 7}\nhistory_start: 2024-01-01\n"
    ).config
    assert config.symbols_from_exchange
    assert config.symbols == ("BTCUSDT", "SOLUSDT")
    assert config.retired_symbols == ("LUNAUSDT",)
    assert config.all_symbols == ("BTCUSDT", "SOLUSDT", "LUNAUSDT")
    assert (config.universe.quote_assets, config.universe.min_age_days) == (("USDT",), 7)


def test_the_bootstrap_load_of_the_refresh_accepts_a_missing_snapshot_and_nothing_else_does(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("symbols: all\nhistory_start: 2024-01-01\n")
    environ = {"COIN_CONFIG": str(path), "COIN_HOME": str(tmp_path / ".coin")}
    assert load_settings(environ, bootstrap_universe=True).config.symbols == ()
    with pytest.raises(ConfigError, match="symbols: list at least one symbol"):
        _settings(tmp_path, "symbols: []\nhistory_start: 2024-01-01\n")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("symbols: [BTCUSDT]\nretired_symbols: [BTCUSDT]\n", r"retired_symbols: \['BTCUSDT'\] are also in symbols"),
        ("symbols: [BTCUSDT]\nsymbols_from_exchange: true\n", "symbols_from_exchange is set by `symbols: all`"),
        ("symbols: all\nretired_symbols: [ETHUSDT]\n", "with symbols: all the universe snapshot retires symbols"),
        ("symbols: [BTCUSDT]\nuniverse: {min_age_days: -1}\n", "universe.min_age_days"),
    ],
)
def test_a_contradictory_symbol_setting_fails_naming_it(tmp_path, config, message):
    _snapshot(tmp_path / ".coin", live=("BTCUSDT",))
    with pytest.raises(ConfigError, match=message):
        _settings(tmp_path, config + "history_start: 2024-01-01\n")


def test_a_damaged_snapshot_fails_the_load_naming_the_file(tmp_path):
    from coin_platform.settings import universe_path

    universe_path(tmp_path / ".coin").parent.mkdir(parents=True)
    universe_path(tmp_path / ".coin").write_text("[]")
    with pytest.raises(ConfigError, match="usdm_perpetuals.json is not a universe snapshot"):
        _settings(tmp_path, "symbols: all\nhistory_start: 2024-01-01\n")


def test_listed_symbols_can_retire_by_hand_keeping_their_partitions(tmp_path):
    config = _settings(tmp_path, "symbols: [BTCUSDT]\nretired_symbols: [ftmusdt]\nhistory_start: 2024-01-01\n").config
    assert (config.symbols, config.all_symbols, config.symbols_from_exchange) == (
        ("BTCUSDT",),
        ("BTCUSDT", "FTMUSDT"),
        False,
    )


def test_the_whole_market_with_every_day_partitioned_is_refused_naming_day_partition_days(tmp_path):
    _snapshot(tmp_path / ".coin", live=tuple(f"S{i:03d}USDT" for i in range(300)))
    with pytest.raises(
        ConfigError, match=r"day_partition_days: symbols: all is 300 symbols × \d+ days = [\d,]+ partitions"
    ):
        _settings(tmp_path, "symbols: all\nhistory_start: 2021-01-01\n")
    config = _settings(tmp_path, "symbols: all\nhistory_start: 2021-01-01\nday_partition_days: 180\n").config
    assert len(config.symbols) == 300


def test_a_snapshot_holding_a_malformed_symbol_fails_the_load_naming_it(tmp_path):
    _snapshot(tmp_path / ".coin", live=("BTCUSDT", "btc-usdt"))
    with pytest.raises(ConfigError, match="symbols: .*'BTC-USDT' is not a Binance symbol"):
        _settings(tmp_path, "symbols: all\nhistory_start: 2024-01-01\n")
