-- globalcart.etl_setting_integer(name, default): a positive whole number from
-- globalcart.etl_settings, or the default when the row is absent. Anything else raises
-- GC001 naming the setting, with a hint.
CREATE OR REPLACE FUNCTION globalcart.etl_setting_integer(p_name text, p_default bigint)
  RETURNS bigint
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value text;
BEGIN
  SELECT s.value INTO v_value FROM globalcart.etl_settings s WHERE s.name = p_name;
  IF NOT FOUND THEN
    RETURN p_default;
  END IF;
  IF btrim(v_value) ~ '^[0-9]{1,18}$' AND btrim(v_value)::bigint > 0 THEN
    RETURN btrim(v_value)::bigint;
  END IF;
  RAISE EXCEPTION 'etl_settings %: % is not a positive whole number', p_name, quote_literal(v_value)
    USING ERRCODE = 'GC001',
          HINT = format('UPDATE globalcart.etl_settings SET value = %L WHERE name = %L;', p_default::text, p_name);
END;
$$;
COMMENT ON FUNCTION globalcart.etl_setting_integer(text, bigint) IS
  'Positive whole-number value of an etl_settings row (the default when absent); raises GC001 naming the setting otherwise.';
