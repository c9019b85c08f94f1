{{ config(unique_key='decision_id') }}
-- One row per decision and what the price did after it: the candidate's exit price `label_horizon_candles`
-- candles later, the return of the action taken (buy = long, sell = short, hold = null) and whether it
-- cleared the round-trip fee. Null while the horizon candle is not stored yet.
with decisions as (
    select * from {{ ref('stg_decisions') }}
    where {{ incremental_window('candle_close_time', lookback_days=horizon_days()) }}
)
select d.decision_id, d.candidate_id, d.strategy, d.symbol, d.interval, d.signal, d.action, d.confidence,
       d.model_version, d.candle_close_time, d.decided_at, d.price, o.exit_price,
       {{ side_adjusted_return('d.side', 'd.price', 'o.exit_price') }} as forward_return,
       {{ side_adjusted_return('d.side', 'd.price', 'o.exit_price') }} > {{ round_trip_fee() }} as hit
from decisions as d
left join {{ ref('mart_candidate_outcomes') }} as o on o.candidate_id = d.candidate_id
