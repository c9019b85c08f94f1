"""Market data: the Binance USD-M client, its rate limiter, kline schemas and the replay server.

Plain Python with no Dagster imports, so tests and scripts call it directly.
"""
