{{ config(unique_key='candidate_id') }}
-- One row per candidate whose horizon candle is stored: the features of the candle that fired and the
-- label, whether the side-adjusted return `label_horizon_candles` candles later clears the round-trip fee.
-- Features come from the fired candle only; the label only from later candles (test no_lookahead).
with outcomes as (
    select * from {{ ref('mart_candidate_outcomes') }}
    where horizon_close_time is not null
      and {{ incremental_window('open_time', lookback_days=horizon_days()) }}
)
select o.candidate_id, o.strategy, o.symbol, o.interval, o.signal, o.side, o.open_time, o.close_time, o.price,
       {%- for column in feature_columns() %} f.{{ column }},{% endfor %}
       o.horizon_close_time, o.exit_price, o.forward_return,
       o.forward_return > {{ round_trip_fee() }} as label
from outcomes as o
join {{ ref('int_features') }} as f on f.candle_key = o.candle_key
