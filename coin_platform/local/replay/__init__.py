"""The offline Binance USD-M replay exchange."""
