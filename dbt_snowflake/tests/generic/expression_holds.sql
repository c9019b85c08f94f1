{#- Fails on every row where `expression` is not true (a null counts as not true). -#}
{% test expression_holds(model, expression) %}
select * from {{ model }} where not coalesce({{ expression }}, false)
{% endtest %}
