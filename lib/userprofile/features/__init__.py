"""Features: per-user behaviour as of a snapshot date. ``build`` computes them, ``catalog``
names every column without Spark, ``step`` writes ``user_features``."""
