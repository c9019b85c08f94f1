{{ config(unique_key='day') }}
-- One row per UTC day × strategy: candidates fired, decisions made, decisions acted on (buy/sell), orders,
-- fills, paper PnL (the fills' realized PnL, net of fees) and the hit rate of the acted decisions whose
-- outcome is known. Days are the candle's (candidates, decisions), the order's and the fill's.
{%- set lookback = horizon_days() %}
with candidates as (
    select {{ utc_day('close_time') }} as day, strategy, count(*) as candidates
    from {{ ref('stg_candidates') }}
    where {{ incremental_window('close_time', target_column='day', lookback_days=lookback) }}
    group by 1, 2
),
decisions as (
    select {{ utc_day('candle_close_time') }} as day, strategy,
           count(*) as decisions,
           sum(case when action in ('buy', 'sell') then 1 else 0 end) as acted,
           sum(case when hit then 1 else 0 end) as hits,
           count(hit) as known_outcomes
    from {{ ref('mart_decision_outcomes') }}
    where {{ incremental_window('candle_close_time', target_column='day', lookback_days=lookback) }}
    group by 1, 2
),
orders as (
    select {{ utc_day('created_at') }} as day, strategy, count(*) as orders
    from {{ ref('stg_orders') }}
    where {{ incremental_window('created_at', target_column='day', lookback_days=lookback) }}
    group by 1, 2
),
fills as (
    select {{ utc_day('f.filled_at') }} as day, o.strategy, count(*) as fills, sum(f.realized_pnl) as paper_pnl
    from {{ ref('stg_fills') }} as f
    join {{ ref('stg_orders') }} as o on o.client_order_id = f.client_order_id
    where {{ incremental_window('f.filled_at', target_column='day', lookback_days=lookback) }}
    group by 1, 2
),
days as (
    select day, strategy from candidates
    union select day, strategy from decisions
    union select day, strategy from orders
    union select day, strategy from fills
)
select days.day, days.strategy,
       coalesce(c.candidates, 0) as candidates,
       coalesce(d.decisions, 0) as decisions,
       coalesce(d.acted, 0) as acted,
       coalesce(o.orders, 0) as orders,
       coalesce(f.fills, 0) as fills,
       coalesce(f.paper_pnl, 0) as paper_pnl,
       case when d.known_outcomes > 0 then cast(d.hits as {{ double_type() }}) / d.known_outcomes end as hit_rate
from days
left join candidates as c on c.day = days.day and c.strategy = days.strategy
left join decisions as d on d.day = days.day and d.strategy = days.strategy
left join orders as o on o.day = days.day and o.strategy = days.strategy
left join fills as f on f.day = days.day and f.strategy = days.strategy
