-- Strategy signals on closed candles, one per candidate_id; `side` is the position the signal means.
{{ deduplicated('candidates', [
    'candidate_id', 'strategy', 'symbol', 'interval', 'signal',
    position_side('side') ~ ' as side',
    'side as order_side',
    'cast(open_time as ' ~ utc_timestamp_type() ~ ') as open_time',
    'cast(close_time as ' ~ utc_timestamp_type() ~ ') as close_time',
    'cast(price as ' ~ double_type() ~ ') as price',
    'features',
    'cast(detected_at as ' ~ utc_timestamp_type() ~ ') as detected_at',
    'cast(published_at as ' ~ utc_timestamp_type() ~ ') as published_at',
    candle_key('symbol', 'interval', 'cast(open_time as ' ~ utc_timestamp_type() ~ ')') ~ ' as candle_key',
], ['candidate_id'], 'detected_at desc') }}
