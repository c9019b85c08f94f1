{{ config(unique_key='day') }}
-- Daily (UTC) bars from the 1m candles, and how many minutes the day holds (1440 when complete).
{{ bars_from(ref('stg_ohlcv_1m'), 'day') }}
