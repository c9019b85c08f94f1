-- 1h candles: typed, one row per (symbol, open_time).
{{ staged_candles('1h') }}
