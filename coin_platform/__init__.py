"""coin_platform: Binance USD-M futures candles, features and signals as Dagster assets."""
