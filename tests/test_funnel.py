"""docs/contract.md §2.5: the funnel is append-only; a replayed event_id is a duplicate."""

import threading
import time
import uuid

import psycopg
from helpers import event, fetch, refresh, scalar, stage, ts


def test_replayed_event_id_is_counted_duplicate_and_changes_nothing(conn):
    eid = uuid.uuid4()
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", event_id=eid)])
    refresh(conn)
    stage(
        conn,
        "funnel_events",
        [
            event("s1", "PURCHASE", event_id=eid, updated_at=ts(100)),  # newer, still ignored
            event("s1", "ADD_TO_CART"),
        ],
    )
    summary = refresh(conn)
    assert summary["funnel_events"]["duplicate"] == 1
    assert summary["funnel_events"]["inserted"] == 1
    assert fetch(conn, "SELECT event_type FROM globalcart.fact_funnel_events WHERE event_id = %s", eid) == [
        ("PAGE_VIEW",)
    ]
    assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_funnel_events") == 0


def test_duplicates_within_one_batch_insert_once(conn):
    eid = uuid.uuid4()
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", event_id=eid) for _ in range(3)])
    summary = refresh(conn)
    assert (summary["funnel_events"]["inserted"], summary["funnel_events"]["duplicate"]) == (1, 2)
    assert scalar(conn, "SELECT count(*) FROM globalcart.fact_funnel_events") == 1


def test_event_id_replayed_under_another_session_is_a_duplicate(conn):
    eid = uuid.uuid4()
    stage(conn, "funnel_events", [event("s1", "PAGE_VIEW", event_id=eid)])
    refresh(conn)
    stage(conn, "funnel_events", [event("s2", "PAGE_VIEW", event_id=eid)])
    summary = refresh(conn)
    assert summary["funnel_events"]["duplicate"] == 1
    assert fetch(conn, "SELECT session_id FROM globalcart.fact_funnel_events") == [("s1",)]


def test_an_event_inserted_by_another_session_meanwhile_is_a_duplicate_not_an_error(dsn):
    """Append-only under concurrency: when another transaction inserts the same event while the
    refresh appends it, the refresh waits for it, then skips the row (ON CONFLICT DO NOTHING): no
    unique violation, no update of what the other wrote, no audit row."""
    eid = uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn) as other:
        stage(conn, "funnel_events", [event("s1", "PURCHASE", event_id=eid, cart_value_usd=10)])
        other.execute(
            "INSERT INTO globalcart.fact_funnel_events (event_id, session_id, event_ts, event_type, channel, "
            "updated_at) VALUES (%s, 's1', now(), 'PAGE_VIEW', 'web', now())",
            (eid,),
        )
        result: list = []
        refresher = threading.Thread(target=lambda: result.append(_refresh_in(dsn)))
        refresher.start()
        time.sleep(0.5)  # the refresh now waits on the other transaction's row
        assert refresher.is_alive()
        other.commit()
        refresher.join(timeout=30)
        [summary] = result
        assert summary["status"] == "ok"
        assert (summary["funnel_events"]["inserted"], summary["funnel_events"]["duplicate"]) == (0, 1)
        assert fetch(conn, "SELECT event_type FROM globalcart.fact_funnel_events") == [("PAGE_VIEW",)]
        assert scalar(conn, "SELECT count(*) FROM globalcart.audit_fact_funnel_events") == 0


def _refresh_in(dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return refresh(conn)
