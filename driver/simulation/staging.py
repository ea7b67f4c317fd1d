"""Producing into staging: a Batch of generated rows COPYed into ``globalcart.stg_*``, as any
producer would (business columns only; the bookkeeping columns take their defaults)."""

from __future__ import annotations

import psycopg

from driver.simulation.generator import COLUMNS, Batch


def copy_batch(conn: psycopg.Connection, batch: Batch) -> None:
    """COPY every source of the batch into its staging table, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        for source in COLUMNS:
            rows = batch.rows[source]
            if not rows:
                continue
            with cur.copy(f"COPY globalcart.stg_{source} ({', '.join(COLUMNS[source])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
