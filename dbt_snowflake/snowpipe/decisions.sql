-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (decisions); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.decisions_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.decisions
  FROM @raw.coin_objects/warehouse/decisions/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
