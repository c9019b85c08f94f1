"""Shared fixtures: real components on free loopback ports, stopped by PID."""

pytest_plugins = [
    "coin_platform_tests.fixtures.stack",
    "coin_platform_tests.fixtures.replay",
]
