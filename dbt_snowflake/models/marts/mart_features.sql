{{ config(unique_key='day') }}
-- Each candle of every interval with its features: the candle's OHLC beside the indicator values.
select f.symbol, f.interval, f.open_time, c.close_time, {{ utc_day('f.open_time') }} as day,
       c.open, c.high, c.low,
       {%- for column in feature_columns() %} f.{{ column }},{% endfor %}
       f.candle_key
from {{ ref('int_features') }} as f
join {{ ref('int_candles') }} as c on c.candle_key = f.candle_key
where {{ incremental_window('f.open_time', target_column='open_time') }}
