{#- A raw table's rows, typed, one per `key` (the last by `order_by` when a load doubled one). -#}
{% macro deduplicated(source_table, columns, key, order_by) -%}
select {{ columns | join(',\n       ') }}
from {{ source('raw', source_table) }}
qualify row_number() over (partition by {{ key | join(', ') }} order by {{ order_by }}) = 1
{%- endmacro %}

{#- The staged candles of one interval: typed prices, one row per (symbol, open_time). -#}
{% macro staged_candles(interval) -%}
  {%- set prices = ['open', 'high', 'low', 'close', 'volume', 'quote_volume', 'taker_buy_volume', 'taker_buy_quote_volume'] -%}
  {%- set columns = ['symbol', 'cast(open_time as ' ~ utc_timestamp_type() ~ ') as open_time'] -%}
  {%- for price in prices -%}{%- do columns.append('cast(' ~ price ~ ' as ' ~ double_type() ~ ') as ' ~ price) -%}{%- endfor -%}
  {%- do columns.append('cast(trades as ' ~ dbt.type_bigint() ~ ') as trades') -%}
  {{ deduplicated('ohlcv_' ~ interval, columns, ['symbol', 'open_time'], 'trades desc, volume desc') }}
{%- endmacro %}

{#- The staged features of one interval: one row per (symbol, open_time). -#}
{% macro staged_features(interval) -%}
  {%- set columns = ['symbol', 'cast(open_time as ' ~ utc_timestamp_type() ~ ') as open_time'] -%}
  {%- for feature in feature_columns() -%}{%- do columns.append('cast(' ~ feature ~ ' as ' ~ double_type() ~ ') as ' ~ feature) -%}{%- endfor -%}
  {{ deduplicated('features_' ~ interval, columns, ['symbol', 'open_time'], 'volume desc') }}
{%- endmacro %}

{#- The candles of one interval as bars of a coarser `grain` ('hour' or 'day'), with the candles they hold. -#}
{% macro bars_from(candles, grain) -%}
with candles as (
    select *,
           {{ dbt.date_trunc(grain, 'open_time') }} as bar_open_time,
           row_number() over (partition by symbol, {{ dbt.date_trunc(grain, 'open_time') }} order by open_time) as first_rank,
           row_number() over (partition by symbol, {{ dbt.date_trunc(grain, 'open_time') }} order by open_time desc) as last_rank
    from {{ candles }}
    where {{ incremental_window('open_time') }}
)
select symbol,
       bar_open_time as open_time,
       {{ utc_day('bar_open_time') }} as day,
       max(case when first_rank = 1 then open end) as open,
       max(high) as high,
       min(low) as low,
       max(case when last_rank = 1 then close end) as close,
       sum(volume) as volume,
       sum(quote_volume) as quote_volume,
       sum(trades) as trades,
       sum(taker_buy_volume) as taker_buy_volume,
       sum(taker_buy_quote_volume) as taker_buy_quote_volume,
       count(*) as candles
from candles
group by symbol, bar_open_time
{%- endmacro %}
