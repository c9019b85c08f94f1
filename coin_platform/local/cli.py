"""The `coin` command: the local stack, `coin dev`, the HTTP API and the replay server."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """coin_platform command line."""


def _local_stack():
    from coin_platform.local.stack import LocalStack
    from coin_platform.settings import ConfigError, load_settings

    try:
        # The stack needs no symbols: with `symbols: all` it starts before the first universe snapshot exists.
        return LocalStack(load_settings(bootstrap_universe=True))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def stack() -> None:
    """Start, stop and inspect the local stack (SeaweedFS S3, tansu Kafka; the replay server
    when MARKET_SOURCE=replay)."""


@stack.command("up")
def stack_up() -> None:
    """Start the local stack in the background and wait until every service answers."""
    from coin_platform.local.stack import StackError

    try:
        for line in _local_stack().up():
            click.echo(line)
    except StackError as exc:
        raise click.ClickException(str(exc)) from None


@stack.command("down")
def stack_down() -> None:
    """Stop the local stack's services by PID."""
    for line in _local_stack().down():
        click.echo(line)


@stack.command("status")
def stack_status() -> None:
    """Report whether each local service is running and answering."""
    lines, healthy = _local_stack().status()
    for line in lines:
        click.echo(line)
    raise SystemExit(0 if healthy else 1)


@main.command("dev")
@click.option("--demo", is_flag=True,
              help="Offline: replay server, the last demo.days days backfilled, live schedules on.")
def dev(demo: bool) -> None:
    """The local stack and the Dagster UI; Ctrl-C stops all of it."""
    import os

    from coin_platform.local.dev import (
        DAGSTER_LOG,
        PLANNED_EVENTS_PER_RUN,
        api_url,
        backfill_recent_days,
        prepare_dagster_home,
        run_dagster_dev,
        start_api,
    )
    from coin_platform.local.stack import StackError
    from coin_platform.ops.logs import log_dir
    from coin_platform.settings import get_settings, load_settings

    if demo:
        os.environ["MARKET_SOURCE"] = "replay"
    local_stack = _local_stack()
    settings = load_settings(bootstrap_universe=True)
    home = prepare_dagster_home(settings)
    logs = log_dir(settings.coin_home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.update(PLANNED_EVENTS_PER_RUN)  # the demo backfill creates its runs in this process
    # Where dagster.yaml's run log handler writes, in this process (the demo's backfill) and in dagster dev's.
    os.environ["COIN_HOME"] = str(settings.coin_home.resolve())
    code = 1
    api = None
    try:
        click.echo(f"starting the local stack (logs in {logs})")
        for line in local_stack.up():
            click.echo(f"  {line}")
        if settings.config.symbols_from_exchange:
            _refresh_universe(settings)
            settings = get_settings()
        if demo:
            backfill_recent_days(settings, settings.config.demo.days, click.echo)
        click.echo("starting the API")
        api = start_api(settings, logs / "api.log")
        click.echo(f"  API on {api_url(settings)} (docs: {api_url(settings)}/docs; pid {api.pid}, log {api.log_file})")
        click.echo("starting Dagster (webserver, daemon, code location)")
        code = run_dagster_dev(settings, home, logs / DAGSTER_LOG, click.echo)
    except StackError as exc:
        click.echo(f"Error: {exc}", err=True)
    except KeyboardInterrupt:
        code = 130
    finally:
        if api is not None:
            api.stop()
            click.echo(f"api: stopped (pid {api.pid})")
        for line in local_stack.down():
            click.echo(line)
    raise SystemExit(code)


@main.command("api")
@click.option("--host", help="Address to listen on [default: config.yaml api.host].")
@click.option("--port", type=int, help="Port to listen on [default: config.yaml api.port].")
def api(host: str | None, port: int | None) -> None:
    """The HTTP API (async backtests, strategies, health) until Ctrl-C.

    Dagster's webserver is DAGSTER_URL, else the local UI (local_stack.dagster_port); in prod
    every endpoint but /health needs the bearer token API_TOKEN.
    """
    from coin_platform.api.app import serve
    from coin_platform.local.health import dagster_health
    from coin_platform.settings import ConfigError, get_settings

    try:
        settings = get_settings()
        probes, timeouts = dagster_health(settings)
        serve(
            settings,
            host=host or settings.config.api.host,
            port=port or settings.config.api.port,
            health_probes=probes,
            health_timeouts=timeouts,
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("trace")
@click.argument("item_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as one JSON object.")
def trace(item_id: str, as_json: bool) -> None:
    """The way of one candidate or decision (ID) from its candle's close to its fill, with the time of each
    step: from the JSON logs under COIN_HOME/logs, and the stores for what the logs lack."""
    import json

    from coin_platform.local.trace import TraceError, build_trace, render
    from coin_platform.settings import ConfigError, get_settings

    try:
        chain = build_trace(item_id.strip().lower(), get_settings())
    except (ConfigError, TraceError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(chain.as_dict(), indent=2) if as_json else render(chain))


@main.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (what GET /health answers).")
def health(as_json: bool) -> None:
    """Whether S3, Kafka, ClickHouse, the DuckDB stores and Dagster's daemons, schedules and sensors answer,
    how old the newest candles are and how far the topic sensors lag; exits 1 naming what is wrong."""
    import json
    import os
    import sys

    from coin_platform.local.health import full_health
    from coin_platform.settings import ConfigError, get_settings

    try:
        report = full_health(get_settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.table())
    sys.stdout.flush()
    # A component that did not answer may still hold a thread (an S3 retry, a Kafka connect): the report is
    # out, so exit now rather than wait for them at interpreter shutdown.
    os._exit(0 if report.ok else 1)


@main.group()
def replay() -> None:
    """The offline Binance-compatible replay server."""


@replay.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--weight-limit", type=int, default=2400, show_default=True,
              help="REQUEST_WEIGHT budget per 1-minute window, as Binance publishes it.")
@click.option("--ban-seconds", type=float, default=120.0, show_default=True,
              help="How long a 418 ban lasts once a client ignores 429s.")
@click.option("--funding-limit", type=int, default=500, show_default=True,
              help="GET /fapi/v1/fundingRate requests per 5-minute window, as Binance documents it.")
@click.option("--faults", default="", help="Fault plan, e.g. '429:every=5,503:p=0.1,truncate:at=3'.")
@click.option("--symbols", default="", help="Extra symbols to list besides the defaults (comma separated).")
def replay_serve(host: str, port: int, weight_limit: int, ban_seconds: float, funding_limit: int, faults: str,
                 symbols: str) -> None:
    """Serve deterministic synthetic USD-M candles on the Binance REST paths until stopped."""
    from coin_platform.local.replay import serve

    extra = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    serve(host=host, port=port, weight_limit=weight_limit, ban_seconds=ban_seconds,
          faults=faults, extra_symbols=extra, funding_limit=funding_limit)


@main.group()
def universe() -> None:
    """The USD-M perpetuals `symbols: all` collects."""


@universe.command("refresh")
@click.option("--if-missing", is_flag=True, help="Only write the snapshot when there is none yet.")
def universe_refresh(if_missing: bool) -> None:
    """Write the universe snapshot from exchangeInfo (the code location reads it when it loads)."""
    from coin_platform.settings import ConfigError, load_settings

    try:
        settings = load_settings(bootstrap_universe=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _refresh_universe(settings, if_missing=if_missing)


def _refresh_universe(settings, *, if_missing: bool = False) -> None:
    """refresh_universe_snapshot, its failures (exchange unreachable, malformed answer, damaged snapshot) as one
    error line."""
    from coin_platform.binance.errors import BinanceError
    from coin_platform.core.universe import UniverseFileError
    from coin_platform.local.dev import refresh_universe_snapshot
    from coin_platform.market.universe import MalformedExchangeInfoError

    try:
        refresh_universe_snapshot(settings, click.echo, if_missing=if_missing)
    except (BinanceError, MalformedExchangeInfoError, UniverseFileError) as exc:
        raise click.ClickException(f"universe refresh: {exc}") from None


# ---------------------------------------------------------------- backups (coin_platform.backup)


def _backup_target():
    """The object store and the deployment's backup parts; DAGSTER_HOME, else the local instance under COIN_HOME."""
    import os
    from pathlib import Path

    from coin_platform.defs.ops.backup import backup_parts
    from coin_platform.defs.resources import build_resources
    from coin_platform.settings import ConfigError, get_settings
    from coin_platform.storage.object_store import ObjectStore

    try:
        settings = get_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    resources = build_resources(settings)
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or settings.coin_home / "dagster_home")
    parts, left_out = backup_parts(
        resources["trading_store"], resources["clickhouse"], resources["warehouse"], dagster_home
    )
    return settings, ObjectStore.from_settings(settings), parts, left_out


@main.command("backup")
def backup() -> None:
    """Back up the trading store, the warehouse, the hot store and the Dagster instance into the
    object store (backups/{UTC time}/), then delete backups older than backup.retention_days."""
    from coin_platform.backup.archive import BackupError, create_backup

    settings, store, parts, left_out = _backup_target()
    try:
        result = create_backup(
            store, parts, retention_days=settings.config.backup.retention_days, left_out=left_out
        )
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backup {result.backup_id}: {result.bytes:,} bytes in {result.seconds:.1f} s ({store.uri}/backups)")
    for name in result.manifest["included"]:
        click.echo(f"  {name}: included")
    for name, reason in result.manifest["excluded"].items():
        click.echo(f"  {name}: left out ({reason})")
    if result.deleted:
        click.echo(f"deleted {len(result.deleted)} expired backup(s): {', '.join(result.deleted)}")


@main.command("restore")
@click.option("--at", "backup_id", help="The backup to restore (an id that `coin backup` printed) [default: newest].")
@click.option("--list", "list_only", is_flag=True, help="List the complete backups and restore nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before replacing the stores.")
def restore(backup_id: str | None, list_only: bool, yes: bool) -> None:
    """Replace the stores by a backup: every object checked first, each store swapped in under its lock.
    Refused while the stores are in use (coin dev, a running run, the Dagster daemon)."""
    from coin_platform.backup.archive import BackupError, list_backups, restore_backup

    _, store, parts, _ = _backup_target()
    if list_only:
        for found in list_backups(store):
            click.echo(found)
        return
    chosen = backup_id or "the newest backup"
    if not yes:
        click.confirm(f"Replace the stores by {chosen} from {store.uri}/backups?", abort=True)
    try:
        result = restore_backup(store, parts, backup_id)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    restored = ", ".join(result.restored)
    click.echo(f"restored {result.backup_id} ({restored}): {result.bytes:,} bytes in {result.seconds:.1f} s")


if __name__ == "__main__":
    main()
