-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (candidates); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.candidates_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.candidates
  FROM @raw.coin_objects/warehouse/candidates/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
