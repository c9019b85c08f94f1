-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (features_15m); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.features_15m_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.features_15m
  FROM @raw.coin_objects/warehouse/features_15m/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
