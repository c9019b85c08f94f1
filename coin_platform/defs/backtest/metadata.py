"""The backtest assets' Markdown metadata: tables of metrics as the Dagster UI shows them."""

import polars as pl


def markdown_table(frame: pl.DataFrame, columns: tuple[str, ...]) -> str:
    """`frame`'s rows under those of `columns` it has (a sweep's grid names vary with its kind)."""
    present = [c for c in columns if c in frame.columns]
    header = "| " + " | ".join(present) + " |\n|" + "---|" * len(present) + "\n"
    return header + "\n".join("| " + " | ".join(shown(row[c]) for c in present) + " |" for row in frame.to_dicts())


def shown(value: object) -> str:
    """A metric as a table cell: four significant digits, a dash where there is none."""
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
