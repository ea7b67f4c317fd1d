"""GlobalCart 360 driver: applies the SQL, feeds staging, calls the refresh and the KPI functions.

The sources it feeds are the warehouse's own registry, ``globalcart.etl_sources`` (``db.sources``)."""
