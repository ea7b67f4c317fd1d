"""The client core: connections and one refresh call (``db``), one-line errors (``errors``),
what commands print (``output``, ``progress``), installing the schema (``migrate``), pg_cron jobs
(``schedule``), roles (``access``) and Citus nodes as migrate sees them (``cluster``). It imports
nothing from the other rooms."""
