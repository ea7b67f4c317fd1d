-- Inferred dimension members (docs/contract.md §2.8): a fact that names a customer or product the
-- dimension does not hold yet gets a placeholder row flagged is_inferred, so that joins
-- never lose the fact. The first real row staged for that key replaces the placeholder
-- whatever its updated_at (see apply_customers / apply_products).

CREATE OR REPLACE FUNCTION globalcart.add_inferred_products(p_product_ids bigint[], p_now timestamptz)
  RETURNS bigint
  LANGUAGE plpgsql
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_added bigint;
BEGIN
  INSERT INTO globalcart.dim_product AS d
         (product_id, sku, product_name, category, list_price_usd, updated_at, is_inferred)
  SELECT k.id, 'UNKNOWN-' || k.id, 'Unknown product ' || k.id, 'UNKNOWN', 0, p_now, true
  FROM (SELECT DISTINCT u.id FROM unnest(p_product_ids) AS u(id) WHERE u.id IS NOT NULL) AS k
  WHERE NOT EXISTS (SELECT 1 FROM globalcart.dim_product p WHERE p.product_id = k.id)
  ON CONFLICT (product_id) DO NOTHING;
  GET DIAGNOSTICS v_added = ROW_COUNT;
  RETURN v_added;
END;
$$;
COMMENT ON FUNCTION globalcart.add_inferred_products(bigint[], timestamptz) IS
  'Adds a placeholder dim_product row (is_inferred) for each id not in the dimension; returns how many.';
