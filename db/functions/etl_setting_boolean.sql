-- globalcart.etl_setting_boolean(name, default): on or off from globalcart.etl_settings (on, off,
-- true, false, yes, no, 1, 0, any case), or the default when the row is absent. Anything else
-- raises GC001 naming the setting, with a hint.
CREATE OR REPLACE FUNCTION globalcart.etl_setting_boolean(p_name text, p_default boolean)
  RETURNS boolean
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
  CASE lower(btrim(v_value))
    WHEN 'on', 'true', 'yes', '1' THEN RETURN true;
    WHEN 'off', 'false', 'no', '0' THEN RETURN false;
    ELSE
      RAISE EXCEPTION 'etl_settings %: % is neither on nor off', p_name, quote_literal(v_value)
        USING ERRCODE = 'GC001',
              HINT = format('UPDATE globalcart.etl_settings SET value = %L WHERE name = %L;',
                            CASE WHEN p_default THEN 'on' ELSE 'off' END, p_name);
  END CASE;
END;
$$;
COMMENT ON FUNCTION globalcart.etl_setting_boolean(text, boolean) IS
  'On/off value of an etl_settings row (the default when absent); raises GC001 naming the setting otherwise.';
