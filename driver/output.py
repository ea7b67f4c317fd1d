"""Plain-text tables for the terminal."""

from __future__ import annotations

from decimal import Decimal


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-align the first column, right-align the others."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def fmt_number(value: Decimal | float | int | None, places: int = 4) -> str:
    """A KPI value: integers as integers, others rounded; NULL as an empty denominator."""
    if value is None:
        return "n/a"
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value:,.{places}f}"


def fmt_pct(value: Decimal | float | None) -> str:
    return "" if value is None else f"{Decimal(value):+.2f} %"
