"""Shared fixtures: real components on free loopback ports, stopped by PID."""

from hypothesis import HealthCheck, settings

# Property tests assert behaviour, never timings: no per-example deadline, and a fixed
# example budget so the suite's length does not depend on the machine's speed.
settings.register_profile(
    "coin_platform",
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("coin_platform")

pytest_plugins = [
    "coin_platform_tests.fixtures.stack",
    "coin_platform_tests.fixtures.replay",
    "coin_platform_tests.fixtures.warehouse",
    "coin_platform_tests.fixtures.dbt_warehouse",
    "coin_platform_tests.fixtures.webhook",
    "coin_platform_tests.fixtures.postgres",
]
