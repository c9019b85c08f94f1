{#- No training row uses data from after its timestamp.

Each row's features must be the stored features of the candle that fired (same symbol, interval and
open_time), its price and close_time that candle's, and its label's horizon candle a stored candle that
closes strictly after it. Returns one row per violation, saying which. -#}
{% test no_lookahead(model, candles, features, feature_columns) %}
with rows_ as (
    select * from {{ model }}
),
fired as (
    select r.candidate_id, r.close_time, r.price, r.horizon_close_time, r.exit_price,
           c.close_time as fired_close_time, c.close as fired_close,
           {%- for column in feature_columns %}
           r.{{ column }} as row_{{ column }}, f.{{ column }} as fired_{{ column }},
           {%- endfor %}
           h.close as horizon_candle_close
    from rows_ as r
    left join {{ candles }} as c
      on c.symbol = r.symbol and c.interval = r.interval and c.open_time = r.open_time
    left join {{ features }} as f
      on f.symbol = r.symbol and f.interval = r.interval and f.open_time = r.open_time
    left join {{ candles }} as h
      on h.symbol = r.symbol and h.interval = r.interval and h.close_time = r.horizon_close_time
)
select candidate_id, 'the horizon candle does not close after the fired candle' as violation
from fired where not coalesce(horizon_close_time > close_time, false)
union all
select candidate_id, 'close_time or price is not the fired candle''s' as violation
from fired where fired_close_time is null or close_time <> fired_close_time or price <> fired_close
union all
select candidate_id, 'exit_price is not the close of a stored later candle' as violation
from fired where horizon_candle_close is null or exit_price <> horizon_candle_close
{%- for column in feature_columns %}
union all
select candidate_id, '{{ column }} is not the fired candle''s' as violation
from fired where row_{{ column }} is distinct from fired_{{ column }}
{%- endfor %}
{% endtest %}
