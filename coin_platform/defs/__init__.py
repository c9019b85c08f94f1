"""The Dagster layer: assets, checks, jobs, schedules and resources over the domain code."""
