"""What the commands print: plain-text tables, KPI values, refresh summaries, comparisons."""

from __future__ import annotations

from decimal import Decimal

from driver.core.errors import DriverError

COUNT_COLUMNS = ("claimed", "inserted", "updated", "stale", "duplicate", "rejected", "deferred", "backlog")


def render_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """Left-align the first column, right-align the others — or as ``align`` says, one letter per
    column: l (left) or r (right)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    align = align or "l" + "r" * (len(header) - 1)

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if align[i] == "l" else c.rjust(widths[i])
                         for i, c in enumerate(cells)).rstrip()  # fmt: skip

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
    """A change in percent, signed, two places ('' when there is none)."""
    return "" if value is None else f"{Decimal(value):+.2f} %"


def refresh_failure(summary: dict) -> DriverError:
    """The one line that says a refresh call failed (it changed nothing; etl_runs has the row)."""
    error = summary.get("error") or {}
    text = (
        f"refresh run {summary.get('run_id')} failed and changed nothing: "
        f"{error.get('sqlstate')} {error.get('message')}"
    )
    if error.get("hint"):
        text += f" (hint: {error['hint']})"
    return DriverError(text)


def format_summary(summary: dict, sources: list[str]) -> str:
    """The jsonb a refresh returns, as a table a person reads; ``sources`` in the order to show them."""
    if summary.get("status") == "skipped":
        return "refresh skipped: another refresh is running (it will apply what is staged)."
    if summary.get("status") == "failed":
        backlog = (summary.get("totals") or {}).get("backlog")
        return (
            f"{refresh_failure(summary)}; {backlog if backlog is not None else 'all'} staged rows wait "
            "for the next call (globalcart.etl_runs and globalcart.pipeline_health have the error)."
        )
    if summary.get("run_id") is None and not (summary.get("totals") or {}).get("claimed"):
        return "nothing staged: nothing to do (no run recorded)."
    totals = summary.get("totals") or {}
    rows = [[source, *(str(summary.get(source, {}).get(c, 0)) for c in COUNT_COLUMNS)] for source in sources]
    rows.append(["total", *(str(totals.get(c, 0)) for c in COUNT_COLUMNS)])
    run = f"refresh run {summary['run_id']}" if summary.get("run_id") else "refresh (no run recorded)"
    out = [
        f"{run}: {summary.get('status')} in {summary.get('duration_ms')} ms",
        render_table(["source", *COUNT_COLUMNS], rows),
    ]
    returned = (summary.get("derived") or {}).get("orders_returned", 0)
    if returned:
        out.append(f"orders turned RETURNED by late returns: {returned}")
    if totals.get("rejected"):
        out.append(f"rejected rows are in globalcart.etl_rejects WHERE run_id = {summary.get('run_id')}")
    if summary.get("run_id") is None and totals.get("deferred"):
        out.append("only rows waiting for their order are staged: left as they are until an order arrives")
    if totals.get("backlog"):
        out.append(f"{totals['backlog']:,} rows wait for the next call (max_rows_per_run); "
                   "CALL globalcart.drain_staging() applies them all")  # fmt: skip
    return "\n".join(out)


def fmt_signed(value: Decimal | int | None) -> str:
    """A change, signed: integers whole, amounts of 1 or more to two places, smaller ones to four
    significant digits (a change of a rate is often in the fourth decimal); NULL as n/a."""
    if value is None:
        return "n/a"
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{int(value):+,}"
    if abs(value) >= 1:
        return f"{value:+,.2f}"
    return f"{value.normalize():+.4g}"


def format_explanation(rows: list[tuple], top: int) -> str:
    """The rows of globalcart.explain_kpis(…) — (kpi, before, after, change, cause, contribution,
    kpi_order), largest contribution first within a KPI — one line per KPI that moved: its change and
    its ``top`` largest causes (the rest summed as "others"), e.g.
    ``return_rate +0.0121 (0.0420 -> 0.0541): returns +0.0125, new_orders -0.0004``."""
    by_kpi: dict[str, list[tuple]] = {}
    for row in rows:
        by_kpi.setdefault(row[0], []).append(row)
    lines = []
    for kpi, parts in by_kpi.items():
        _, before, after, change, _, _, _ = parts[0]
        shown = [f"{cause} {fmt_signed(part)}" for _, _, _, _, cause, part, _ in parts[:top]]
        rest = [part for *_, part, _ in parts[top:]]
        if rest:
            total = None if any(p is None for p in rest) else sum(rest)
            shown.append(f"{len(rest)} other cause{'s' if len(rest) > 1 else ''} {fmt_signed(total)}")
        lines.append(f"{kpi} {fmt_signed(change)} ({fmt_number(before)} -> {fmt_number(after)}): {', '.join(shown)}")
    return "\n".join(lines) if lines else "no KPI moved"


def format_comparison(rows: list[tuple], before: str, after: str) -> str:
    """The rows of globalcart.compare_kpis(before, after) as a table."""
    return render_table(
        ["kpi", before, after, "change", "change %"],
        [[k, fmt_number(b), fmt_number(a), fmt_number(d), fmt_pct(p)] for k, b, a, d, p in rows],
    )

