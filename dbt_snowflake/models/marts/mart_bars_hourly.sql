{{ config(unique_key='day') }}
-- Hourly bars from the 1m candles: first open, highest high, lowest low, last close, summed volumes,
-- and how many minutes the hour holds (60 when complete).
{{ bars_from(ref('stg_ohlcv_1m'), 'hour') }}
