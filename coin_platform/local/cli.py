"""The `coin` command: the local stack, `coin dev`, the HTTP API and the replay server."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """coin_platform command line."""


def _local_stack():
    from coin_platform.local.stack import LocalStack
    from coin_platform.settings import ConfigError, get_settings

    try:
        return LocalStack(get_settings())
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
        api_url,
        backfill_recent_days,
        prepare_dagster_home,
        run_dagster_dev,
        start_api,
    )
    from coin_platform.local.stack import StackError
    from coin_platform.settings import get_settings

    if demo:
        os.environ["MARKET_SOURCE"] = "replay"
    local_stack = _local_stack()
    settings = get_settings()
    home = prepare_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    code = 1
    api = None
    try:
        for line in local_stack.up():
            click.echo(line)
        if demo:
            backfill_recent_days(settings, settings.config.demo.days, click.echo)
        api = start_api(settings, settings.coin_home.resolve() / "logs" / "api.log")
        click.echo(f"API on {api_url(settings)} (docs: {api_url(settings)}/docs; pid {api.pid}, log {api.log_file})")
        click.echo(f"Dagster UI on http://127.0.0.1:{settings.config.local_stack.dagster_port} "
                   "(Ctrl-C stops the UI, the API and the stack)")
        code = run_dagster_dev(settings, home)
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
    from coin_platform.settings import ConfigError, get_settings

    try:
        settings = get_settings()
        serve(settings, host=host or settings.config.api.host, port=port or settings.config.api.port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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


if __name__ == "__main__":
    main()
