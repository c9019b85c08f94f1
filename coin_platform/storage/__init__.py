"""Storage: object-store layout and parquet IO (no Dagster imports)."""
