-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (fills); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.fills_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.fills
  FROM @raw.coin_objects/warehouse/fills/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
