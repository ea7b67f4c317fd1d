"""The benchmarks (``globalcart bench``): the refresh beside the bare guarded upsert and a full
reload at two sizes (``refresh``), freshness and the sustained rate of follow mode
(``freshness``), the refresh beside dbt (``dbt``), on Citus (``citus``) and through CDC (``cdc``)."""
