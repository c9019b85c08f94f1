-- 15m candles: typed, one row per (symbol, open_time).
{{ staged_candles('15m') }}
