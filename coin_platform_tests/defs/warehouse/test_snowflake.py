"""The prod warehouse resource: dagster-snowflake's resource with key-pair authentication only, its
key never shown, loading raw partitions into a fakesnow server through the same domain code."""

import datetime as dt
import logging

import dagster as dg
import polars as pl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from coin_platform.core.time import UTC_MS
from coin_platform.defs.snowflake import KeyPairSnowflakeResource, SnowflakeWarehouseResource, snowflake_key_pair

PASSPHRASE = "correct horse battery staple"
DAY = dt.date(2024, 3, 9)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(key) -> str:
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def secret_parts(pem: str) -> list[str]:
    """What must never be shown: the passphrase and every line of the key's body."""
    return [PASSPHRASE, *[line for line in pem.splitlines() if line and not line.startswith("-----")]]


def resource(pem: str, fakesnow_server, database: str, passphrase: str = PASSPHRASE) -> SnowflakeWarehouseResource:
    return SnowflakeWarehouseResource(
        snowflake=KeyPairSnowflakeResource(
            account="coin",
            user="loader",
            database=database,
            warehouse="LOAD_WH",
            timezone="UTC",
            private_key=pem,
            private_key_password=passphrase,
            additional_snowflake_connection_args=fakesnow_server.connection_args(),
        )
    )


def test_key_pair_fields_come_from_the_environment_and_a_password_is_refused():
    assert snowflake_key_pair({"SNOWFLAKE_PRIVATE_KEY": "pem"}) == {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")}
    from_file = snowflake_key_pair(
        {"SNOWFLAKE_PRIVATE_KEY_PATH": "/keys/rsa.p8", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "p"}
    )
    assert from_file == {
        "private_key_path": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH"),
        "private_key_password": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
    }
    with pytest.raises(ValueError, match="SNOWFLAKE_PASSWORD is set: Snowflake takes key-pair authentication only"):
        snowflake_key_pair({"SNOWFLAKE_PASSWORD": "hunter2", "SNOWFLAKE_PRIVATE_KEY": "pem"})
    with pytest.raises(Exception, match="key-pair authentication only") as refused:
        KeyPairSnowflakeResource(account="coin", user="loader", password="hunter2")
    assert "hunter2" not in str(refused.value)


def test_the_connector_gets_the_key_and_loads_while_no_repr_log_or_error_shows_it(
    key, pem, fakesnow_server, snowflake_database, caplog
):
    warehouse_resource = resource(pem, fakesnow_server, snowflake_database)
    # The connector is handed the key itself (DER), decrypted with the passphrase; no password.
    connector_args = warehouse_resource.snowflake._connection_args
    assert "password" not in connector_args
    loaded = serialization.load_der_private_key(connector_args["private_key"], password=None)
    assert loaded.private_numbers() == key.private_numbers()

    caplog.set_level(logging.DEBUG)
    warehouse = warehouse_resource.get_warehouse()
    warehouse.create_raw_tables()
    fills = pl.DataFrame(
        {
            "client_order_id": ["d1"],
            "seq": [0],
            "symbol": ["BTCUSDT"],
            "side": ["buy"],
            "price": [50_010.0],
            "quantity": [0.002],
            "fee": [0.1],
            "realized_pnl": [-0.1],
            "filled_at": [dt.datetime(2024, 3, 9, 10, tzinfo=dt.UTC)],
        },
    ).cast({"seq": pl.Int32, "filled_at": UTC_MS})
    assert warehouse.load_partition("fills", fills, DAY) == 1
    assert warehouse.load_partition("fills", fills, DAY) == 1
    assert warehouse.query("SELECT client_order_id, seq FROM raw.fills").rows() == [("d1", 0)]

    with pytest.raises(Exception) as wrong:
        resource(pem, fakesnow_server, snowflake_database, passphrase="wrong").get_warehouse().create_raw_tables()
    shown = [
        repr(warehouse_resource),
        str(warehouse_resource),
        repr(warehouse),
        caplog.text,
        str(wrong.value),
        repr(wrong.value),
    ]
    for part in secret_parts(pem):
        assert not any(part in text for text in shown)
