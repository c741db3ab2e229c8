"""Report: a self-contained HTML description of a profile snapshot (``render``), drift
between snapshots (``drift``), and the Spark aggregations behind it (``step``)."""
