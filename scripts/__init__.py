"""Developer scripts; importable so the tests can reuse them (``scripts.standalone_cluster``)."""
