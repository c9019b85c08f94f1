{#- The two types the models cast to, spelled per dialect. -#}

{% macro utc_timestamp_type() -%}
  {{ return(adapter.dispatch('utc_timestamp_type')()) }}
{%- endmacro %}

{% macro default__utc_timestamp_type() -%}timestamp with time zone{%- endmacro %}
{% macro duckdb__utc_timestamp_type() -%}timestamptz{%- endmacro %}
{% macro snowflake__utc_timestamp_type() -%}timestamp_tz{%- endmacro %}

{% macro double_type() -%}
  {{ return(adapter.dispatch('double_type')()) }}
{%- endmacro %}

{% macro default__double_type() -%}double precision{%- endmacro %}
{% macro duckdb__double_type() -%}double{%- endmacro %}
{% macro snowflake__double_type() -%}double{%- endmacro %}

{#- The UTC midnight that starts the day 'YYYY-MM-DD'. -#}
{% macro utc_day_start(day) -%}
  {{ return(adapter.dispatch('utc_day_start')(day)) }}
{%- endmacro %}

{% macro default__utc_day_start(day) -%}cast('{{ day }} 00:00:00+00:00' as {{ utc_timestamp_type() }}){%- endmacro %}
{% macro snowflake__utc_day_start(day) -%}to_timestamp_tz('{{ day }} 00:00:00 +00:00', 'YYYY-MM-DD HH24:MI:SS TZH:TZM'){%- endmacro %}
