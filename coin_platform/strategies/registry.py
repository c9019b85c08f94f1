"""Strategies from config.yaml: `kind` picks the class, `params` fill its fields."""

from __future__ import annotations

from collections.abc import Iterable

from coin_platform.core.intervals import normalize_interval
from coin_platform.settings import ConfigError, StrategyConfig
from coin_platform.strategies.base import Strategy
from coin_platform.strategies.builtin import EmaCrossover, MacdCrossover, RsiReversal, VolumeZoneBreakout

STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.kind: cls for cls in (RsiReversal, EmaCrossover, MacdCrossover, VolumeZoneBreakout)
}


def build_strategy(config: StrategyConfig) -> Strategy:
    """The strategy one config entry describes; a bad parameter raises ConfigError naming its key."""
    cls = STRATEGY_CLASSES[config.kind]
    known = cls.param_names()
    for key in config.params:
        if key not in known:
            raise ConfigError(
                f"strategies.{config.name}.params.{key}: unknown parameter of {config.kind} "
                f"(expected one of {', '.join(known)})"
            )
    return cls(name=config.name, intervals=config.intervals, **config.params)


def build_strategies(configs: Iterable[StrategyConfig], interval: str | None = None) -> list[Strategy]:
    """The enabled strategies, in config order; with `interval`, only those that evaluate it.

    Every entry is validated, even a disabled one or one for another interval, so a
    bad parameter fails at start-up rather than when the entry first comes into play.
    """
    wanted = normalize_interval(interval) if interval is not None else None
    built = [(config.enabled, build_strategy(config)) for config in configs]
    return [
        strategy
        for enabled, strategy in built
        if enabled and (wanted is None or not strategy.intervals or wanted in strategy.intervals)
    ]
