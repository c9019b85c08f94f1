{{ config(unique_key='candidate_id') }}
-- What the price did after each candidate over the next `label_horizon_candles` candles: the close there
-- (exit_price), the side-adjusted return to it, and the best and worst the position saw on the way
-- (max favorable / adverse excursion). Null while those candles are not stored yet; the days before a
-- run's window are rebuilt too, so outcomes fill in as later candles arrive.
with candidates as (
    select * from {{ ref('stg_candidates') }}
    where {{ incremental_window('open_time', lookback_days=horizon_days()) }}
)
select cand.candidate_id, cand.strategy, cand.symbol, cand.interval, cand.signal, cand.side,
       cand.open_time, candle.close_time, candle.close as price,
       {{ var('label_horizon_candles') | int }} as horizon_candles,
       candle.horizon_close_time,
       candle.horizon_close as exit_price,
       {{ side_adjusted_return('cand.side', 'candle.close', 'candle.horizon_close') }} as forward_return,
       case cand.side when 'long' then candle.horizon_high / candle.close - 1
                      when 'short' then 1 - candle.horizon_low / candle.close end as max_favorable_excursion,
       case cand.side when 'long' then candle.horizon_low / candle.close - 1
                      when 'short' then 1 - candle.horizon_high / candle.close end as max_adverse_excursion,
       cand.candle_key
from candidates as cand
join {{ ref('int_candles') }} as candle on candle.candle_key = cand.candle_key
