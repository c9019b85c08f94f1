"""Operations: alerts to Slack and e-mail; no Dagster imports."""
