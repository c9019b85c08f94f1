"""The one Binance USD-M HTTP layer: signing, retries with jitter, weight accounting, 418/429.

Plain Python with no Dagster imports.
"""
