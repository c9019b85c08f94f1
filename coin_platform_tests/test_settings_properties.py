"""Property tests: any config.yaml and environment give Settings or a ConfigError, nothing else."""

import datetime as dt

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from coin_platform.settings import ConfigError, load_settings

VARIABLES = (
    "COIN_PLATFORM_ENV",
    "MARKET_SOURCE",
    "COIN_HOME",
    "BINANCE_FAPI_URL",
    "REPLAY_URL",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "KAFKA_BOOTSTRAP_SERVERS",
    "BINANCE_ORDER_URL",
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    "LIVE_TRADING",
    "ALERT_SLACK_WEBHOOK_URL",
    "ALERT_EMAIL_TO",
    "SMTP_URL",
)
BASE = {
    "symbols": ["BTCUSDT"],
    "history_start": dt.date(2024, 1, 1),
    "strategies": [{"name": "rsi_reversal", "kind": "rsi_reversal", "intervals": ["1m"]}],
    "events": {"candidates_topic": "coin.c", "publish_max_age_seconds": 900},
    "trading": {"risk": {"kill_switch": False}},
}
KEYS = sorted({*BASE, "intervals", "retention_days", "cleaning", "ingestion", "local_stack", "demo", "inference"})

yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**600), max_value=10**600),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.dates(),
    st.datetimes(),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=16,
)
# Nested keys of the real sections, so overrides reach the deep validators too.
paths = st.lists(
    st.sampled_from(
        [
            *KEYS,
            "publish_max_age_seconds",
            "dead_letter_suffix",
            "decisions_topic",
            "max_messages_per_tick",
            "risk",
            "kill_switch",
            "params",
            "name",
            "kind",
            "s3_port",
            "weight_budget_fraction",
        ]
    ),
    min_size=1,
    max_size=3,
)
# YAML text a mapping dump cannot produce: impossible dates, deep nesting, bad syntax.
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "symbols: [BTCUSDT]\nhistory_start: 2024-02-30\n",
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01 25:61:00\n",
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nevents: {publish_max_age_seconds: 1e400}\n",
            "symbols: [BTCUSDT]\nhistory_start: 2024-01-01\nevents: {publish_max_age_seconds: .nan}\n",
            "a: " + "[" * 5_000 + "]" * 5_000 + "\n",
            "a: &x [*x]\n",
            "!!python/object:os.system\n",
        ]
    ),
)


def with_override(base: dict, path: list[str], value: object) -> dict:
    config = yaml.safe_load(yaml.safe_dump(base))
    node = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return config


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    return tmp_path_factory.mktemp("settings_properties") / "config.yaml"


def loads_or_refuses(config_path, text: str, environ: dict[str, str]) -> None:
    config_path.write_text(text)
    try:
        load_settings({"COIN_HOME": str(config_path.parent / ".coin"), **environ, "COIN_CONFIG": str(config_path)})
    except ConfigError:
        pass


@given(paths, yaml_values)
def test_a_config_with_any_value_anywhere_gives_settings_or_a_config_error(config_path, path, value):
    loads_or_refuses(config_path, yaml.safe_dump(with_override(BASE, path, value)), {})


@given(st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), yaml_values, max_size=6))
def test_any_mapping_as_config_gives_settings_or_a_config_error(config_path, mapping):
    loads_or_refuses(config_path, yaml.safe_dump(mapping), {})


@given(yaml_texts)
@example("symbols: [BTCUSDT]\nhistory_start: 2024-02-30\n")
@example("a: " + "[" * 5_000 + "]" * 5_000 + "\n")
def test_any_config_text_gives_settings_or_a_config_error(config_path, text):
    loads_or_refuses(config_path, text, {})


@given(st.dictionaries(st.sampled_from(VARIABLES), st.text(max_size=60), max_size=6))
def test_any_environment_gives_settings_or_a_config_error(config_path, environ):
    loads_or_refuses(config_path, yaml.safe_dump(BASE), environ)


@given(st.text(max_size=60))
@example("")
@example("config\x00.yaml")
def test_any_config_path_gives_settings_or_a_config_error(config_path, path):
    try:
        load_settings({"COIN_CONFIG": path, "COIN_HOME": str(config_path.parent / ".coin")})
    except ConfigError:
        pass
