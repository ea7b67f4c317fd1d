"""PostgreSQL servers the driver starts itself (``embedded``): the throwaway ones of the benchmark
and the tests, and the lasting local one of ``demo`` and ``server start|stop|status``."""
