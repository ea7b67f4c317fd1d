"""Citus nodes, as the client core sees them: is this database a Citus coordinator, with how many
workers; letting the owner role log in on the workers (which ``migrate`` and ``distribute`` need);
and a database on every node of a cluster (for the benchmark's and the tests' clusters). The
distributed layout itself is ``driver.scale.citus``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import psycopg

from driver.core.db import OWNER
from driver.core.errors import DriverError


class Node(Protocol):
    """A server of a cluster: where it listens, and the DSN of one of its databases."""
    host: str
    port: int

    def dsn(self, dbname: str) -> str:
        """The DSN of database ``dbname`` on this node."""
        ...


# The settings our own clusters (the benchmark's, the tests') give every node beyond Citus itself:
# two-phase commit for statements that write shards of several nodes, and outbound connections
# without TLS (the nodes share 127.0.0.1).
NODE_OPTIONS = "-c max_prepared_transactions=100 -c citus.node_conninfo=sslmode=prefer"


def create_cluster_database(coordinator: Node, workers: list[Node], name: str, *, add_workers: bool = True) -> str:
    """Database ``name`` on every node of a cluster, with the citus extension, and (unless not
    ``add_workers``) the coordinator and its workers registered in it: Citus keeps its metadata per
    database. Returns the coordinator's DSN of it."""
    for node in [coordinator, *workers]:
        with psycopg.connect(node.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(node.dsn(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
    if add_workers:
        with psycopg.connect(coordinator.dsn(name), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (coordinator.host, coordinator.port))
            for worker in workers:
                conn.execute("SELECT citus_add_node(%s, %s)", (worker.host, worker.port))
    return coordinator.dsn(name)


@dataclass
class CitusState:
    """Whether this database has Citus, is its coordinator, and how many workers hold shards."""
    installed: bool  # the citus extension exists in this database
    coordinator: bool  # this node is the coordinator (or Citus has no nodes registered yet)
    workers: int  # active primary nodes that can hold shards, the coordinator aside


def state(conn: psycopg.Connection) -> CitusState:
    """Is this database a Citus coordinator, and with how many workers? (No Citus: all false.)"""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')").fetchone()
    conn.commit()
    if not (row and row[0]):
        return CitusState(False, False, 0)
    coordinator, workers = conn.execute(
        """SELECT coalesce((SELECT groupid = 0 FROM pg_dist_local_group), true),
                  (SELECT count(*) FROM pg_dist_node
                    WHERE groupid <> 0 AND isactive AND noderole = 'primary' AND shouldhaveshards)"""
    ).fetchone()
    conn.commit()
    return CitusState(True, bool(coordinator), int(workers))


def prepare_workers(conn: psycopg.Connection) -> None:
    """On a coordinator with workers: let the owner role log in on the workers (see the module's
    text). Citus copies a role to the workers with the coordinator's attributes (NOLOGIN) when it
    adds a node, and in each database the first time it propagates an object the role owns (a
    database's record of what it has propagated is its own). So: first a throwaway function owned
    by the role has Citus do that copy in this database now, then each worker alone gets ALTER ROLE
    … LOGIN — alone, because a worker with Citus metadata would otherwise pass it on to the others
    while they run it too. migrate and distribute run this every time."""
    found = state(conn)
    if not (found.installed and found.coordinator and found.workers):
        return
    owner_exists = conn.execute("SELECT to_regrole(%s) IS NOT NULL", (OWNER,)).fetchone()[0]
    conn.commit()
    if not owner_exists:
        return
    with conn.transaction():  # (Citus's copy of the role for this database, made now)
        conn.execute("CREATE FUNCTION public.globalcart_citus_probe() RETURNS void LANGUAGE sql AS ''")
        conn.execute(f"ALTER FUNCTION public.globalcart_citus_probe() OWNER TO {OWNER}")
        conn.execute("DROP FUNCTION public.globalcart_citus_probe()")
    with conn.transaction():
        failed = conn.execute(
            "SELECT nodename || ':' || nodeport || ': ' || result FROM run_command_on_workers(%s) WHERE NOT success",
            (f"SET citus.enable_ddl_propagation TO off; ALTER ROLE {OWNER} LOGIN",),
        ).fetchall()
    if failed:
        raise DriverError(
            f"could not let {OWNER} log in on the Citus workers ({'; '.join(f for (f,) in failed)}): "
            "check that the coordinator reaches every worker as a superuser, then run migrate again."
        )
