-- globalcart.etl_setting_interval(name, default): an interval-valued row of
-- globalcart.etl_settings, or the default when the row is absent. A value that is not an
-- interval raises GC001 with a hint, rather than silently using the default.
CREATE OR REPLACE FUNCTION globalcart.etl_setting_interval(p_name text, p_default interval)
  RETURNS interval
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog
AS $$
DECLARE
  v_value text;
BEGIN
  SELECT s.value INTO v_value FROM globalcart.etl_settings s WHERE s.name = p_name;
  IF NOT FOUND THEN
    RETURN p_default;
  END IF;
  BEGIN
    RETURN v_value::interval;
  EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RAISE EXCEPTION 'etl_settings %: % is not an interval', p_name, quote_literal(v_value)
      USING ERRCODE = 'GC001',
            HINT = format('UPDATE globalcart.etl_settings SET value = %L WHERE name = %L;', p_default::text, p_name);
  END;
END;
$$;
COMMENT ON FUNCTION globalcart.etl_setting_interval(text, interval) IS
  'Interval value of an etl_settings row (the default when absent); raises GC001 when it is not an interval.';
