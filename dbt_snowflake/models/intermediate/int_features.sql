-- Every interval's candle features in one relation.
{%- for interval in candle_intervals() %}
select symbol, '{{ interval }}' as interval, open_time, {{ feature_columns() | join(', ') }},
       {{ candle_key('symbol', "'" ~ interval ~ "'", 'open_time') }} as candle_key
from {{ ref('stg_features_' ~ interval) }}
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
