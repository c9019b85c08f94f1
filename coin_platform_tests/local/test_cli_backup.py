"""`coin backup` and `coin restore` as a developer runs them, against the session's SeaweedFS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from coin_platform.settings import PROJECT_ROOT
from coin_platform.trading.orders import OrderRequest
from coin_platform.trading.store import TradingStore
from coin_platform_tests.trading.support import NOW, make_decision


def coin(*args: str, home: Path, s3, bucket: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COIN_HOME": str(home),
        "COIN_CONFIG": str(PROJECT_ROOT / "config.yaml"),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_BUCKET": bucket,
        "AWS_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "coin_platform.local.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_then_restore_brings_the_trading_store_back(tmp_path, seaweedfs, s3_bucket):
    home = tmp_path / "coin"
    store = TradingStore(home / "trading" / "trading.duckdb")
    decision = make_decision("ETHUSDT")
    with store.transaction() as tx:
        tx.record_pending(
            decision, OrderRequest(decision.id, "ETHUSDT", "buy", 0.5, False, 3_000.0), broker="paper", created_at=NOW
        )

    backed_up = coin("backup", home=home, s3=seaweedfs, bucket=s3_bucket)
    assert backed_up.returncode == 0, backed_up.stderr
    backup_id = backed_up.stdout.split()[1].rstrip(":")
    assert "trading_store: included" in backed_up.stdout
    assert "hot_store: left out" in backed_up.stdout

    listed = coin("restore", "--list", home=home, s3=seaweedfs, bucket=s3_bucket)
    assert listed.stdout.split() == [backup_id]

    store.path.unlink()
    restored = coin("restore", "--at", backup_id, "--yes", home=home, s3=seaweedfs, bucket=s3_bucket)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"restored {backup_id} (trading_store)")
    assert store.orders()["client_order_id"].to_list() == [decision.id]
