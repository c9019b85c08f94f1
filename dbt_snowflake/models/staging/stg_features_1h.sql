-- 1h candle features: typed, one row per (symbol, open_time).
{{ staged_features('1h') }}
