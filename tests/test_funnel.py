"""CONTRACT 2.5: the funnel is append-only; a replayed event_id is a duplicate."""

import uuid

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


def test_funnel_insert_uses_on_conflict_do_nothing(conn):
    """The function text itself: the append is ON CONFLICT DO NOTHING, never an update."""
    body = scalar(conn, "SELECT prosrc FROM pg_proc WHERE proname = 'apply_funnel_events'")
    assert "ON CONFLICT (session_id, event_id) DO NOTHING" in body
    assert "DO UPDATE" not in body
