-- Every interval's candles in one relation, with their close_time (open + interval - 1 ms) and the close,
-- high and low of the `label_horizon_candles` candles after each (null where they are not stored yet).
{%- set horizon = var('label_horizon_candles') | int %}
{%- if horizon < 1 %}{{ exceptions.raise_compiler_error("var label_horizon_candles must be at least 1, got " ~ horizon) }}{% endif %}
with candles as (
{%- for interval, minutes in candle_intervals().items() %}
    select symbol, '{{ interval }}' as interval, open_time,
           {{ dbt.dateadd('millisecond', minutes * 60000 - 1, 'open_time') }} as close_time,
           open, high, low, close, volume
    from {{ ref('stg_ohlcv_' ~ interval) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
{%- endfor %}
),
ahead as (
    select *,
           lead(close_time, {{ horizon }}) over (partition by symbol, interval order by open_time) as horizon_close_time,
           lead(close, {{ horizon }}) over (partition by symbol, interval order by open_time) as horizon_close,
           max(high) over (partition by symbol, interval order by open_time
                           rows between 1 following and {{ horizon }} following) as horizon_high,
           min(low) over (partition by symbol, interval order by open_time
                          rows between 1 following and {{ horizon }} following) as horizon_low
    from candles
)
select *, {{ candle_key('symbol', 'interval', 'open_time') }} as candle_key
from ahead
