"""Prod's Snowflake warehouse resource: dagster-snowflake with key-pair authentication only.

Its own module so that a local deployment (and every run worker of it) never imports
dagster-snowflake and the Snowflake connector, ≈4 s of import time; `prod_resources` imports it.
"""

from __future__ import annotations

import dagster as dg
from dagster_snowflake import SnowflakeResource
from pydantic import model_validator

from coin_platform.defs.resources import ObjectStoreResource, WarehouseResource
from coin_platform.storage.warehouse import EXTERNAL_STAGE, SnowflakeStage, SnowflakeWarehouse

# Fields of the Snowflake resource whose values are never shown.
_SNOWFLAKE_SECRETS = frozenset({"password", "private_key", "private_key_password"})


class SnowflakePasswordRefused(TypeError):
    """A Snowflake password was given. Not a ValueError on purpose: pydantic would wrap that in a
    ValidationError that quotes the input, password included."""


class KeyPairSnowflakeResource(SnowflakeResource):
    """dagster-snowflake's resource, key-pair authentication only: a password is refused, and the key
    and its passphrase are left out of the repr (so of any log or error that prints the resource)."""

    @model_validator(mode="before")
    @classmethod
    def _key_pair_only(cls, values: dict) -> dict:
        if values.get("password") is not None:
            raise SnowflakePasswordRefused(
                "Snowflake takes key-pair authentication only here: set a private key, not a password"
            )
        return values

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, ("<hidden>" if name in _SNOWFLAKE_SECRETS and value is not None else value)


class SnowflakeWarehouseResource(WarehouseResource):
    """Prod: Snowflake through dagster-snowflake, loading from an external stage over the object store
    (each partition's parquet written under `warehouse/` in the bucket, then COPY INTO … MATCH_BY_COLUMN_NAME)."""

    snowflake: KeyPairSnowflakeResource
    # The object store the external stage reads; without it, files go to an internal stage by PUT.
    object_store: ObjectStoreResource | None = None
    stage: str = EXTERNAL_STAGE
    storage_integration: str | None = None

    def get_warehouse(self, holder: str = "") -> SnowflakeWarehouse:
        if self.object_store is None:
            stage = SnowflakeStage()
        else:
            stage = SnowflakeStage(
                name=self.stage,
                store=self.object_store.get_store(),
                url=f"s3://{self.object_store.bucket}/",
                storage_integration=self.storage_integration,
            )

        def connect():
            return self.snowflake.get_connection(raw_conn=True)

        return SnowflakeWarehouse(connect, stage)


def snowflake_key_pair(environ: dict[str, str]) -> dict[str, object]:
    """The key-pair fields of the Snowflake resource, as environment variables resolved at run time:
    the key from a file (SNOWFLAKE_PRIVATE_KEY_PATH) when that is set, else its PEM text
    (SNOWFLAKE_PRIVATE_KEY); the passphrase only when SNOWFLAKE_PRIVATE_KEY_PASSPHRASE is set."""
    if environ.get("SNOWFLAKE_PASSWORD"):
        raise ValueError("SNOWFLAKE_PASSWORD is set: Snowflake takes key-pair authentication only, unset it")
    fields: dict[str, object] = (
        {"private_key_path": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH")}
        if environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
        else {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")}
    )
    if environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
        fields["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    return fields
