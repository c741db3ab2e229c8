"""User profiling on Apache Spark and Delta Lake.

Raw event logs -> bronze -> silver -> per-user features -> MLlib segments and
purchase propensity -> the partitioned ``user_profile`` Delta table.
"""

from __future__ import annotations

__version__ = "0.1.0"
