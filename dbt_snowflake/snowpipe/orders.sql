-- Generated from coin_platform/storage/warehouse_tables.py RAW_TABLES (orders); coin_platform_tests/storage/test_warehouse.py keeps it equal.
CREATE PIPE IF NOT EXISTS raw.orders_pipe
  AUTO_INGEST = TRUE
  AS COPY INTO raw.orders
  FROM @raw.coin_objects/warehouse/orders/
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE;
