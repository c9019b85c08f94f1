"""How long work reports its progress, the same on the console (`coin dev`'s backfill bar) and in run logs."""


def backfill_status(done: int, total: int, candles: int, elapsed_s: float) -> str:
    """`done/total partitions · candles/s · time left` of a backfill, the rate and the rest from what is done."""
    if elapsed_s <= 0 or done == 0:
        return f"{done}/{total} partitions · {candles:,} candles · time left unknown"
    left_s = (total - done) * elapsed_s / done
    minutes, seconds = divmod(round(left_s), 60)
    return f"{done}/{total} partitions · {candles / elapsed_s:,.0f} candles/s · {minutes}:{seconds:02d} left"
