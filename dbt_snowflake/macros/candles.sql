{#- The candle intervals the warehouse holds (core/intervals SUPPORTED_INTERVALS), in minutes. -#}
{% macro candle_intervals() -%}
  {{ return({'1m': 1, '15m': 15, '1h': 60}) }}
{%- endmacro %}

{#- The feature columns of a candle (features.FEATURE_SCHEMA without open_time), in order. -#}
{% macro feature_columns() -%}
  {{ return(['close', 'volume', 'ema_20', 'ema_50', 'rsi_14', 'macd', 'macd_signal', 'macd_hist', 'bb_upper',
             'bb_middle', 'bb_lower', 'atr_14', 'zone_low', 'zone_high', 'zone_volume_share']) }}
{%- endmacro %}

{#- One text key per candle, so a relationship test can follow (symbol, interval, open_time). -#}
{% macro candle_key(symbol, interval, open_time) -%}
  {{ dbt.concat([symbol, "'/'", interval, "'/'", "cast(" ~ open_time ~ " as " ~ dbt.type_string() ~ ")"]) }}
{%- endmacro %}

{#- The UTC day a timestamp falls on. -#}
{% macro utc_day(column) -%}
  cast({{ dbt.date_trunc('day', column) }} as date)
{%- endmacro %}

{#- 'long' for a buy, 'short' for a sell (core/signals SIDE_OF_SIGNAL gives the order side). -#}
{% macro position_side(order_side) -%}
  case {{ order_side }} when 'buy' then 'long' when 'sell' then 'short' end
{%- endmacro %}

{#- Return of a position from entry to exit price, by side; null when there is no side (a hold). -#}
{% macro side_adjusted_return(side, entry_price, exit_price) -%}
  case {{ side }}
    when 'long' then {{ exit_price }} / {{ entry_price }} - 1
    when 'short' then 1 - {{ exit_price }} / {{ entry_price }}
  end
{%- endmacro %}

{#- A trade pays the fee twice (in and out): its return must clear this to count. -#}
{% macro round_trip_fee() -%}
  {{ 2 * var('fee_rate') }}
{%- endmacro %}

{#- Whole days the label horizon can reach past a candle (the longest interval decides). -#}
{% macro horizon_days() -%}
  {%- set longest = candle_intervals().values() | max -%}
  {{ return(((var('label_horizon_candles') | int) * longest / 1440) | round(0, 'ceil') | int) }}
{%- endmacro %}
