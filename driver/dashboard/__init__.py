"""The live dashboard (``globalcart dashboard``, docs/dashboard.md): a Starlette app that serves one
page and the JSON it reads — the KPIs and why they moved, daily trends, the pipeline's health and
its runs — read as a ``globalcart_reader`` login from the summaries and the reader's functions."""
