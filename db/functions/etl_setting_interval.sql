-- globalcart.etl_setting_interval(name, default): an interval-valued row of
-- globalcart.etl_settings, or the default when the row is absent. A value that is not an
-- interval, or is negative, raises GC001 naming the setting, with a hint — it is never
-- silently replaced by the default.
CREATE OR REPLACE FUNCTION globalcart.etl_setting_interval(p_name text, p_default interval)
  RETURNS interval
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_value text;
  v_interval interval;
BEGIN
  SELECT s.value INTO v_value FROM globalcart.etl_settings s WHERE s.name = p_name;
  IF NOT FOUND THEN
    RETURN p_default;
  END IF;
  BEGIN
    v_interval := v_value::interval;
  EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    v_interval := NULL;
  END;
  IF v_interval IS NULL OR v_interval < interval '0' THEN
    RAISE EXCEPTION 'etl_settings %: % is not an interval of 0 or more', p_name, quote_literal(v_value)
      USING ERRCODE = 'GC001',
            HINT = format('UPDATE globalcart.etl_settings SET value = %L WHERE name = %L;', p_default::text, p_name);
  END IF;
  RETURN v_interval;
END;
$$;
COMMENT ON FUNCTION globalcart.etl_setting_interval(text, interval) IS
  'Interval value of an etl_settings row (the default when absent); raises GC001 naming the setting when it is not an interval of 0 or more.';
