"""The four signal names a strategy emits, and the order side each one means."""

from __future__ import annotations

from typing import Literal

Signal = Literal["enter_long", "exit_long", "enter_short", "exit_short"]
Side = Literal["buy", "sell"]
SIGNALS: tuple[Signal, ...] = ("enter_long", "exit_long", "enter_short", "exit_short")
SIDE_OF_SIGNAL: dict[str, Side] = {
    "enter_long": "buy",
    "exit_long": "sell",
    "enter_short": "sell",
    "exit_short": "buy",
}
