{#- The rows an incremental run rebuilds, as a predicate on `column` (a UTC timestamp).

With vars min_day and max_day (YYYY-MM-DD; dagster-dbt passes a partition's days) it is those UTC days;
without them, every day from the last day already in the model (its `target_column`). `lookback_days`
widens the window backwards, for models whose rows change when later candles arrive (outcomes).
A full build (or the first one) reads everything. -#}
{% macro incremental_window(column, target_column=none, lookback_days=0) -%}
  {%- if not is_incremental() -%}
    true
  {%- else -%}
    {%- set days = day_range() -%}
    {%- if days -%}
      {{ column }} >= {{ dbt.dateadd('day', -lookback_days, utc_day_start(days[0])) }}
      and {{ column }} < {{ dbt.dateadd('day', 1, utc_day_start(days[1])) }}
    {%- else -%}
      {%- set last = dbt.date_trunc('day', 'max(' ~ (target_column or column) ~ ')') -%}
      {{ column }} >= coalesce(
        (select {{ dbt.dateadd('day', -lookback_days, last) }} from {{ this }}), {{ utc_day_start('1970-01-01') }}
      )
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{#- (min_day, max_day) from the vars, checked; none when neither is set. -#}
{% macro day_range() -%}
  {%- set min_day, max_day = var('min_day'), var('max_day') -%}
  {%- if min_day is none and max_day is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- for name, value in [('min_day', min_day), ('max_day', max_day)] -%}
    {%- if value is none or not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) -%}
      {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a UTC day YYYY-MM-DD (set both min_day and max_day), got " ~ value) }}
    {%- endif -%}
  {%- endfor -%}
  {%- if (min_day | string) > (max_day | string) -%}
    {{ exceptions.raise_compiler_error("var min_day " ~ min_day ~ " is after max_day " ~ max_day) }}
  {%- endif -%}
  {{ return([min_day | string, max_day | string]) }}
{%- endmacro %}
