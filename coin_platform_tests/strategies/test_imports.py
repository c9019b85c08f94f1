"""Backtests and training use strategies without the loader, Kafka or the object store."""

import subprocess
import sys

FORBIDDEN = ("coin_platform.loader", "coin_platform.events", "coin_platform.storage")


def test_importing_strategies_pulls_in_no_loader_events_or_storage():
    code = (
        "import sys, coin_platform.strategies\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
