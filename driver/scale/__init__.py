"""Scale-out: the distributed layout on a Citus coordinator, generated from the source registry
(``citus``: ``globalcart distribute``)."""
