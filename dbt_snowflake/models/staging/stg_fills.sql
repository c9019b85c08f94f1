-- Fills of the orders, one per (client_order_id, seq); realized_pnl is net of the fill's fee.
{{ deduplicated('fills', [
    'client_order_id',
    'cast(seq as integer) as seq',
    'symbol', 'side',
    'cast(price as ' ~ double_type() ~ ') as price',
    'cast(quantity as ' ~ double_type() ~ ') as quantity',
    'cast(fee as ' ~ double_type() ~ ') as fee',
    'cast(realized_pnl as ' ~ double_type() ~ ') as realized_pnl',
    'cast(filled_at as ' ~ utc_timestamp_type() ~ ') as filled_at',
    dbt.concat(['client_order_id', "'/'", 'cast(seq as ' ~ dbt.type_string() ~ ')']) ~ ' as fill_key',
], ['client_order_id', 'seq'], 'filled_at desc') }}
