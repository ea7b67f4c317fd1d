-- The CDC feed's staging triggers (docs/cdc.md), regenerated on
-- every migrate from globalcart.etl_cdc_tables — the bronze tables `globalcart cdc attach`
-- created — so that each stays in step with its staging table's columns. Nothing without a feed.
-- A table still in its initial copy is left as attach made it: the copy holds a lock on it while
-- its slot is created on the source, which waits for every transaction with an id to end — with
-- the source on this server, migrate's own, and the two would wait for each other.
SELECT globalcart.install_bronze_trigger(b.bronze_table, b.source_name)
  FROM globalcart.etl_cdc_tables b
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel r
                    WHERE r.srrelid = b.bronze_table AND r.srsubstate <> 'r')
 ORDER BY b.source_name;
