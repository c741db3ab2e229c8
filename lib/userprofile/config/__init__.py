"""Configuration: the schema (``schema``), loading and checks (``loader``), rule expressions
(``rules``). The names most callers need are importable from here."""

from __future__ import annotations

from userprofile.config.loader import load_settings
from userprofile.config.schema import (
    ClvConfig,
    FeaturesConfig,
    GeneratorConfig,
    IngestConfig,
    LifecycleConfig,
    PersonaShares,
    PrivacyConfig,
    PropensityConfig,
    RecommendationsConfig,
    RfmConfig,
    SegmentationConfig,
    SegmentRule,
    Settings,
    SparkConfig,
    StorageConfig,
    TablesConfig,
    TagRule,
)
from userprofile.config.sources import CsvLayout, EventSource, RegexLayout, TextLayout

__all__ = [
    "ClvConfig",
    "CsvLayout",
    "EventSource",
    "FeaturesConfig",
    "GeneratorConfig",
    "IngestConfig",
    "LifecycleConfig",
    "PersonaShares",
    "PrivacyConfig",
    "PropensityConfig",
    "RecommendationsConfig",
    "RegexLayout",
    "RfmConfig",
    "SegmentRule",
    "SegmentationConfig",
    "Settings",
    "SparkConfig",
    "StorageConfig",
    "TablesConfig",
    "TagRule",
    "TextLayout",
    "load_settings",
]
