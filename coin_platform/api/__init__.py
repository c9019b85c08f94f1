"""The HTTP API: async backtests (launched on Dagster, read back from the object store) and health."""
