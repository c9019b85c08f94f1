"""The partition steps the Dagster assets call: ingest, clean, features, candidates, compaction.

Plain Python over the domain packages and storage's one reader/writer per dataset;
no Dagster imports.
"""
