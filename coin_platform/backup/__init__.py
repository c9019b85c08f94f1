"""Backups of the platform's state (trading store, warehouse, hot store, Dagster instance) and their restore.

`parts` copies each store consistently under its own lock and puts a copy back; `archive` stores the
copies in the object store under `backups/{id}/` with a manifest, verifies them, restores them and
applies the retention.
"""
