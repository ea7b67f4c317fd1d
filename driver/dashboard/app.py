"""The live dashboard's web app (docs/dashboard.md): ``create_app(dsn)`` gives a Starlette app that
serves the page (``/``, ``/runs/<id>``), its scripts and stylesheets (``/static/…``: the app's own
and uPlot's, from this package: no network beyond the app) and the JSON it reads:

- ``/api/kpis?from&to&country&channel&since`` — the fourteen KPIs of a slice (globalcart.kpi_values);
  for the whole warehouse, also each KPI's change since the latest snapshot of ``since`` (default
  ``before``, when one exists) and its causes (globalcart.explain_kpis_since);
- ``/api/daily?from&to&country&channel&days`` — per day: GMV, orders, return rate, SLA breach rate
  (globalcart.kpi_daily) and conversion (globalcart.kpi_funnel_summary), the last ``days`` (90);
- ``/api/health`` — globalcart.pipeline_health per source and the follow loop's heartbeat;
- ``/api/runs?limit`` and ``/api/runs/<id>`` — globalcart.dashboard_runs / dashboard_run.

Only GET; the reads of one answer run in one read-only transaction (one state of the warehouse) as
``globalcart_reader`` (SET LOCAL ROLE: the login must be a member; it can do nothing else there), on
one of a few kept connections. A bad parameter is a 400 with a one-line message; numbers of the
KPIs are exact decimal strings, those of the charts plain numbers.
"""

from __future__ import annotations

import json
import queue
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from driver.core.db import APPLICATION_NAME

STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    # nothing but the app itself: no inline script, no other origin, no framing
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BadRequest(Exception):
    """A parameter the API cannot take: a 400 with this one-line message."""


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_json_default, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=SECURITY_HEADERS)


def _slice(request: Request) -> dict[str, Any]:
    """The slice of a request: from, to (timestamps; a date is its UTC midnight), country (two
    letters), channel (text)."""
    params = request.query_params
    slice_: dict[str, Any] = {}
    for name in ("from", "to"):
        text = params.get(name) or None
        if text is None:
            slice_[name] = None
            continue
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            text += "T00:00:00+00:00"
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{name}: {text!r} is not a date or a timestamp (e.g. 2026-11-01)") from None
        if value.tzinfo is None:
            raise BadRequest(f"{name}: {text!r} has no time zone (add +00:00)")
        slice_[name] = value
    country = params.get("country") or None
    if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
        raise BadRequest(f"country: {country!r} is not a two-letter country code (e.g. DE)")
    slice_["country"] = country.upper() if country else None
    channel = params.get("channel") or None
    if channel is not None and len(channel) > 64:
        raise BadRequest("channel: longer than 64 characters")
    slice_["channel"] = channel
    return slice_


def _integer(request: Request, name: str, default: int, least: int, most: int) -> int:
    text = request.query_params.get(name)
    if text in (None, ""):
        return default
    if not re.fullmatch(r"\d{1,9}", text) or not least <= int(text) <= most:
        raise BadRequest(f"{name}: {text!r} is not a whole number from {least} to {most}")
    return int(text)


class Warehouse:
    """The database the app reads, through a few kept connections (opened on demand, each used by one
    request at a time), every read in a read-only transaction with globalcart_reader's rights."""

    def __init__(self, dsn: str, keep: int = 4):
        self.dsn = dsn
        self.keep = keep
        self._idle: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()

    def _connection(self) -> psycopg.Connection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.dsn, connect_timeout=5, application_name=APPLICATION_NAME,
                                       row_factory=psycopg.rows.dict_row)  # fmt: skip
                # jsonb numbers stay exact decimals (sent on as strings, like the KPIs)
                set_json_loads(lambda text: json.loads(text, parse_float=Decimal), conn)
                conn.read_only = True
                # several reads of one request see one state of the warehouse (Warehouse.snapshot)
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                return conn
            if not conn.closed:
                return conn

    @contextmanager
    def snapshot(self) -> Iterator[Callable[..., list[dict[str, Any]]]]:
        """One read-only transaction as globalcart_reader, whose queries all see the same state of the
        warehouse: yields ``query(sql, params)`` -> its rows as dicts. A failed connection is dropped."""
        conn = self._connection()
        try:
            # every read with globalcart_reader's rights alone, whatever else the login may do, and
            # bounded: a read stuck behind a lock or a slow plan frees its thread after 10 s
            conn.execute("SET LOCAL ROLE globalcart_reader")
            conn.execute("SET LOCAL statement_timeout = '10s'")
            yield lambda sql, params=(): conn.execute(sql, params).fetchall()
            conn.rollback()
        except BaseException:
            conn.close()
            raise
        if self._idle.qsize() < self.keep:
            self._idle.put(conn)
        else:
            conn.close()

    def read(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """The rows of one query, as dicts (one snapshot of its own)."""
        with self.snapshot() as query:
            return query(sql, params)


def kpis(db: Warehouse, slice_: dict[str, Any], since: str | None) -> dict[str, Any]:
    """The KPIs of a slice; for the whole warehouse, their change since a snapshot and its causes."""
    whole = all(v is None for v in slice_.values())
    label = since if since is not None else "before"
    snapshot = None
    moved: dict[str, dict[str, Any]] = {}  # the KPIs that moved since the snapshot: before, change, causes
    with db.snapshot() as query:  # (the values, the changes and their causes of one state)
        rows = query("SELECT kpi_order, kpi_name, kpi_value FROM globalcart.kpi_values(%(from)s, %(to)s, %(country)s, "
                     "%(channel)s) ORDER BY kpi_order", slice_)  # fmt: skip
        if whole:
            found = query("SELECT max(taken_at) AS taken_at FROM globalcart.kpi_snapshots WHERE label = %s", (label,))
            if found[0]["taken_at"] is not None:
                snapshot = {"label": label, "taken_at": found[0]["taken_at"]}
                for r in query("SELECT kpi, before, change, cause, contribution FROM globalcart.explain_kpis_since(%s)",
                               (label,)):  # fmt: skip
                    entry = moved.setdefault(r["kpi"], {"before": r["before"], "change": r["change"], "causes": []})
                    entry["causes"].append([r["cause"], r["contribution"]])
    if whole and snapshot is None and since is not None:
        raise BadRequest(f"since: no snapshot labelled {since!r}")
    out = []
    for r in rows:
        entry: dict[str, Any] = {"order": r["kpi_order"], "name": r["kpi_name"], "value": r["kpi_value"]}
        if snapshot is not None:  # (a KPI that did not move: as it was, no cause)
            entry |= moved.get(r["kpi_name"]) or {
                "before": r["kpi_value"], "change": None if r["kpi_value"] is None else Decimal(0), "causes": []}
        out.append(entry)
    return {"slice": slice_, "since": snapshot, "kpis": out}


def daily(db: Warehouse, slice_: dict[str, Any], days: int) -> dict[str, Any]:
    """Per day of the slice (the last ``days`` days before ``to``, or before the latest day with data):
    GMV, orders, return rate, SLA breach rate, conversion."""
    params = dict(slice_, days=days)
    rows = db.read(
        """WITH bounds AS (
             SELECT coalesce((%(to)s::timestamptz AT TIME ZONE 'UTC')::date,
                             (SELECT max(s.order_day) + 1 FROM globalcart.kpi_order_summary s)) AS day_to),
           days AS (
             SELECT greatest(b.day_to - %(days)s, (%(from)s::timestamptz AT TIME ZONE 'UTC')::date) AS day_from,
                    b.day_to
               FROM bounds b),
           o AS (
             SELECT k.day, sum(k.orders) AS orders, sum(k.gmv_usd) AS gmv_usd, sum(k.returned_orders) AS returned,
                    sum(k.delivered_orders) AS delivered, sum(k.breached_shipments) AS breached,
                    sum(k.delivered_shipments) AS shipped
               FROM globalcart.kpi_daily k, days d
              WHERE k.day >= coalesce(d.day_from, k.day) AND k.day < d.day_to
                AND (%(country)s::text IS NULL OR k.country_code = %(country)s)
                AND (%(channel)s::text IS NULL OR k.channel = %(channel)s)
              GROUP BY k.day),
           f AS (
             SELECT s.session_day AS day, sum(s.sessions) AS sessions, sum(s.purchased_sessions) AS purchased
               FROM globalcart.kpi_funnel_summary s, days d
              WHERE s.session_day >= coalesce(d.day_from, s.session_day) AND s.session_day < d.day_to
                AND %(country)s::text IS NULL AND (%(channel)s::text IS NULL OR s.channel = %(channel)s)
              GROUP BY s.session_day)
         SELECT coalesce(o.day, f.day) AS day, coalesce(o.orders, 0) AS orders, coalesce(o.gmv_usd, 0) AS gmv_usd,
                r.return_rate, r.sla_breach_rate, f.purchased::numeric / nullif(f.sessions, 0) AS conversion_rate
           FROM o FULL JOIN f ON f.day = o.day
           -- (the ratios by the project's one rule of them)
           LEFT JOIN LATERAL globalcart.kpi_order_ratios(o.orders::bigint, 0, o.returned::bigint, o.delivered::bigint,
                                                         o.shipped::bigint, o.breached::bigint, 0, 0) AS r ON true
          ORDER BY 1""",
        params,
    )
    series: dict[str, list] = {name: [] for name in
                               ("day", "gmv_usd", "orders", "return_rate", "sla_breach_rate", "conversion_rate")}
    for r in rows:
        series["day"].append(r["day"].isoformat())
        for name in ("gmv_usd", "orders", "return_rate", "sla_breach_rate", "conversion_rate"):
            series[name].append(None if r[name] is None else float(r[name]))
    return {"slice": slice_, "days": days, "series": series}


def health(db: Warehouse) -> dict[str, Any]:
    """pipeline_health per source, the worst state of them, and the follow loop's heartbeat."""
    with db.snapshot() as query:
        sources = query("SELECT * FROM globalcart.pipeline_health ORDER BY source_name")
        loop = query("SELECT * FROM globalcart.dashboard_follow_loop()")  # (the follow loop's heartbeat)
    return {"sources": sources, "status": "failing" if any(s["status"] == "failing" for s in sources) else
            "lagging" if any(s["status"] == "lagging" for s in sources) else "ok",
            "follow_loop": loop[0] if loop else {"started_at": None, "beat_at": None, "alive": False}}  # fmt: skip


def create_app(dsn: str) -> Starlette:
    """The dashboard of the warehouse at ``dsn``."""
    db = Warehouse(dsn)

    def api(handler):
        async def endpoint(request: Request) -> Response:
            try:  # (the reads block: in the thread pool, not on the event loop)
                return _json(await run_in_threadpool(handler, request))
            except BadRequest as exc:
                return _json({"error": str(exc)}, 400)
            except LookupError as exc:
                return _json({"error": str(exc)}, 404)
            except psycopg.OperationalError as exc:
                return _json({"error": f"the warehouse cannot be reached: {str(exc).strip().splitlines()[0]}"}, 503)
            except psycopg.Error as exc:
                return _json({"error": f"database error: {str(exc).strip().splitlines()[0]}"}, 500)

        return endpoint

    def get_kpis(request: Request) -> Any:
        since = request.query_params.get("since") or None
        if since is not None and len(since) > 200:
            raise BadRequest("since: longer than 200 characters")
        return kpis(db, _slice(request), since)

    def get_daily(request: Request) -> Any:
        return daily(db, _slice(request), _integer(request, "days", 90, 1, 3660))

    def get_runs(request: Request) -> Any:
        return {"runs": db.read("SELECT * FROM globalcart.dashboard_runs(%s)",
                                (_integer(request, "limit", 20, 1, 200),))}  # fmt: skip

    def get_run(request: Request) -> Any:
        text = request.path_params["run_id"]
        if not re.fullmatch(r"\d{1,18}", text):
            raise BadRequest(f"run: {text!r} is not a run id")
        found = db.read("SELECT globalcart.dashboard_run(%s) AS run", (int(text),))[0]["run"]
        if found is None:
            raise LookupError(f"run {text} does not exist")
        return found

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def run_page(request: Request) -> Response:
        return FileResponse(STATIC / "run.html", headers=SECURITY_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return _json({"error": f"no such endpoint: {request.url.path}"}, 404)
        return Response("not found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json({"error": f"{request.method} is not allowed: the dashboard only reads (GET)"}, 405)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/runs/{run_id}", run_page, methods=["GET"]),
        Route("/api/kpis", api(get_kpis), methods=["GET"]),
        Route("/api/daily", api(get_daily), methods=["GET"]),
        Route("/api/health", api(lambda request: health(db)), methods=["GET"]),
        Route("/api/runs", api(get_runs), methods=["GET"]),
        Route("/api/runs/{run_id}", api(get_run), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
