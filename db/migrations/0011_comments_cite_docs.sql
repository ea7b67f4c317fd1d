-- 0011: the catalog's comments cite the documents of the repository (docs/contract.md, whose
-- sections keep the numbers the older comments cite), not a contract outside it.
COMMENT ON TABLE globalcart.etl_sources IS
  'The sources of the refresh (docs/contract.md §1), in apply_order: staging table, fact or dimension, the key of newest-wins, '
  'the primary key (distribution column first), and whether rows wait for their order (order-grain children).';
COMMENT ON COLUMN globalcart.kpi_snapshots.kpi_order IS
  'Position of the KPI in docs/contract.md §3 (1-14): the order in which it is shown.';
