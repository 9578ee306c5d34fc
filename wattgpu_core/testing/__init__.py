"""Helpers shared by the tests (``tests/``) and the bench scripts (``bench/``), importable wherever the package is
installed: ``browser`` starts the real app and drives it in headless Chromium (needs the ``test`` extra:
playwright), ``postgres`` starts a throwaway PostgreSQL cluster for the DuckLake store. Nothing in the app or the
CLI imports them (like ``numpy.testing``)."""
