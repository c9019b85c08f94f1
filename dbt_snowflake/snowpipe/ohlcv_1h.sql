-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (ohlcv_1h); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.ohlcv_1h_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.ohlcv_1h
  FROM @raw.coin_objects/warehouse/ohlcv_1h/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
