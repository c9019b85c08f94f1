"""Market data: the Binance USD-M klines client (over coin_platform.binance), kline schemas and the replay server.

Plain Python with no Dagster imports, so tests and scripts call it directly.
"""
