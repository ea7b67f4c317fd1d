"""The simulated source: the generator of customers, products, orders with their children and
funnel sessions (``generator``), COPY into staging (``staging``), the changes of a time window
(``deltas``), the base history (``seed``) and the OLTP shop that CDC reads from (``shop``)."""
