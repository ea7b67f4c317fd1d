"""Feeds into staging other than the driver's own COPY: the CDC feed by logical replication
(``cdc``: attach, status, detach)."""
