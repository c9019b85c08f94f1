"""The one Binance USD-M HTTP layer: signing, retries with jitter, weight accounting, 418/429.

`market/` (klines, exchangeInfo) and `trading/` (the order broker) both go through
`binance.http.BinanceHttp`. Plain Python with no Dagster imports.
"""
