"""GlobalCart 360 driver: applies the SQL, feeds staging, calls the refresh and the KPI functions."""

# The sources of CONTRACT section 1, in the order the refresh applies them.
SOURCES = ("customers", "products", "orders", "order_items", "payments", "shipments", "returns", "funnel_events")
