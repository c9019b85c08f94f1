-- Orders the trading store placed, one per client_order_id (the decision id).
{{ deduplicated('orders', [
    'client_order_id', 'decision_id', 'strategy', 'signal', 'symbol', 'side',
    'cast(quantity as ' ~ double_type() ~ ') as quantity',
    'reduce_only',
    'cast(reference_price as ' ~ double_type() ~ ') as reference_price',
    'status', 'broker', 'exchange_order_id',
    'cast(filled_quantity as ' ~ double_type() ~ ') as filled_quantity',
    'cast(average_price as ' ~ double_type() ~ ') as average_price',
    'cast(fees as ' ~ double_type() ~ ') as fees',
    'reason',
    'cast(created_at as ' ~ utc_timestamp_type() ~ ') as created_at',
], ['client_order_id'], 'created_at desc') }}
