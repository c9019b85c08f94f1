-- What inference decided for each candidate, one per decision_id; `side` is the position acted on.
{{ deduplicated('decisions', [
    'decision_id', 'candidate_id', 'strategy', 'symbol', 'interval', 'signal', 'action',
    "case action when 'buy' then 'long' when 'sell' then 'short' end as side",
    'cast(confidence as ' ~ double_type() ~ ') as confidence',
    'model_version',
    'cast(price as ' ~ double_type() ~ ') as price',
    'cast(candle_close_time as ' ~ utc_timestamp_type() ~ ') as candle_close_time',
    'inputs',
    'cast(decided_at as ' ~ utc_timestamp_type() ~ ') as decided_at',
    'cast(published_at as ' ~ utc_timestamp_type() ~ ') as published_at',
], ['decision_id'], 'decided_at desc') }}
