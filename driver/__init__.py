"""GlobalCart 360 driver: applies the SQL, feeds staging, calls the refresh and the KPI functions."""
