"""The config's schema: typed, strict sections; unknown keys are errors.

Secrets never live in config files: a config names the environment variable
that holds a secret (see ``PrivacyConfig``). Loading (``extends``, ``${ENV}``,
rule checks) is ``userprofile.config.loader``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from userprofile.config.sources import EventSource
from userprofile.config.strict import StrictModel

_SPARK_SIZE = re.compile(r"^\d+[kmgt]?$", re.IGNORECASE)


class SparkConfig(StrictModel):
    master: str = "local[*]"
    app_name: str = "userprofile"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(default=8, ge=1)
    # Any further Spark settings, passed through as they are.
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("driver_memory")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _SPARK_SIZE.match(value):
            raise ValueError(f"{value!r} is not a Spark memory size such as 2g or 512m")
        return value


class StorageConfig(StrictModel):
    """Folders or URIs. Relative paths are resolved against the working directory."""

    warehouse: str = "data/warehouse"
    landing: str = "data/landing"
    models: str = "data/models"
    checkpoints: str = "data/checkpoints"
    # Written by `userprofile generate` for evaluation only; the pipeline never reads it.
    ground_truth: str = "data/ground_truth"
    # HTML reports written by `userprofile report` (a local or mounted path: /dbfs, /Volumes).
    reports: str = "data/reports"
    # Audiences written by `userprofile export --out NAME` (NAME under this folder): erase
    # rewrites the exports listed in tables.export_manifest, so exports stay where it looks.
    exports: str = "data/exports"


class TablesConfig(StrictModel):
    """Each table is a name: a path under the warehouse, a catalog name or a URI.

    ``bronze/events`` is a folder under ``storage.warehouse``; ``main.up.events``
    (dots, no slash) is a metastore/Unity Catalog table; ``s3://...``,
    ``abfss://...`` or ``/abs/path`` is used as the table's location.
    """

    bronze_events: str = "bronze/events"
    bronze_quarantine: str = "bronze/quarantine"
    silver_events: str = "silver/events"
    silver_users: str = "silver/users"
    # Per day, user and session: the roll-up features read (rebuilt by ingest per date).
    silver_user_day: str = "silver/user_day"
    user_features: str = "gold/user_features"
    model_metrics: str = "gold/model_metrics"
    # Segments per trained model: size, centre in original units, name, stable id, status.
    segment_summary: str = "gold/segment_summary"
    user_profile: str = "gold/user_profile"
    # Published beside the profile: tag definitions, tag counts and lifecycle flows.
    tag_dictionary: str = "gold/tag_dictionary"
    tag_counts: str = "gold/tag_counts"
    lifecycle_transitions: str = "gold/lifecycle_transitions"
    # anonymous_key -> user_key, learnt from events that carry both (a login).
    silver_identities: str = "silver/identities"
    # One row per pipeline run and snapshot date: status, steps, counts, durations, error.
    pipeline_runs: str = "ops/pipeline_runs"
    # One row per ingest micro-batch: counts and the event dates it changed.
    ingest_log: str = "ops/ingest_log"
    # Erasure: the audit of requests and the suppression list that keeps erased users out.
    erasure_requests: str = "ops/erasure_requests"
    erasure_suppression: str = "ops/erasure_suppression"
    # One row per `userprofile export`: where, which format, with raw ids or not.
    export_manifest: str = "ops/export_manifest"
    # The data-quality gate: deliveries it held back, and the operators' releases of them.
    blocked_deliveries: str = "ops/blocked_deliveries"
    delivery_releases: str = "ops/delivery_releases"


class PersonaShares(StrictModel):
    loyal_big_spender: float = Field(default=0.10, ge=0)
    bargain_hunter: float = Field(default=0.25, ge=0)
    window_shopper: float = Field(default=0.30, ge=0)
    new_user: float = Field(default=0.20, ge=0)
    dormant: float = Field(default=0.15, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> PersonaShares:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one persona share must be positive")
        return self


class GeneratorConfig(StrictModel):
    users: int = Field(default=2000, ge=1)
    start_date: dt.date = dt.date(2026, 1, 1)
    days: int = Field(default=120, ge=1)
    seed: int = 42
    # Share of events given one kind of realistic dirt (malformed, duplicate, ...).
    dirt_rate: float = Field(default=0.01, ge=0, le=0.5)
    # Share of events that arrive in a later day's landing folder.
    late_rate: float = Field(default=0.01, ge=0, le=0.5)
    personas: PersonaShares = Field(default_factory=PersonaShares)

    @property
    def end_date(self) -> dt.date:
        """The first day after the generated range."""
        return self.start_date + dt.timedelta(days=self.days)


def _default_sources() -> dict[str, EventSource]:
    return {"events": EventSource(path="events")}


class IngestConfig(StrictModel):
    # Event sources by name; each has its own checkpoint. Default: the generator's JSON logs.
    sources: dict[str, EventSource] = Field(default_factory=_default_sources)
    # CRM users export (CSV: user_id,email,phone,age,gender,region,signup_date) under landing.
    users_path: str = "users"
    # Hold back a delivery (a micro-batch) when more than this share of its records is
    # rejected: nothing of it is written until its files are fixed or it is released.
    max_reject_share: float = Field(default=0.05, ge=0, le=1)
    # A micro-batch with fewer records is never held by max_reject_share (a few bad lines
    # in a small delivery are noise); its rejected lines are quarantined as always.
    reject_share_min_rows: int = Field(default=100, ge=0)
    # Timestamps further than this ahead of the ingestion clock are rejected.
    future_tolerance_hours: int = Field(default=24, ge=0)
    # Prices above this are rejected as absurd.
    max_price: float = Field(default=100_000.0, gt=0)
    max_files_per_batch: int = Field(default=1000, ge=1)
    # Sources without session ids are sessionised with this inactivity gap.
    session_gap_minutes: int = Field(default=30, ge=1)
    # An event re-sent with its timestamp moved by up to this many days (a corrected time
    # zone across midnight) is recognised by (source, event_id) and kept once (the first
    # delivery wins). Silver's MERGE reads the batch's dates widened by this much.
    resend_window_days: int = Field(default=1, ge=0, le=31)

    @field_validator("sources")
    @classmethod
    def _names(cls, value: dict[str, EventSource]) -> dict[str, EventSource]:
        bad = [name for name in value if not re.fullmatch(r"[a-z][a-z0-9_]*", name)]
        if bad:
            raise ValueError(f"source names must be lower_snake_case: {', '.join(bad)}")
        return value


class PrivacyConfig(StrictModel):
    # Name of the environment variable holding the HMAC key; never the key itself.
    pseudonym_key_env: str = "USERPROFILE_PSEUDONYM_KEY"
    # Hours of table history `userprofile erase` keeps (VACUUM RETAIN). 0: no version from
    # before the erasure stays readable by time travel. The price: a query reading an older
    # version at that moment fails, and a write not yet committed loses its files, so run
    # erase while no ingest or pipeline writes (a larger value keeps the erased rows that long).
    erase_retention_hours: int = Field(default=0, ge=0)


class FeaturesConfig(StrictModel):
    windows_days: list[int] = Field(default_factory=lambda: [7, 30, 90])
    night_hours: list[int] = Field(default_factory=lambda: [22, 23, 0, 1, 2, 3, 4, 5])
    # Categories kept per user in `category_affinity` (the user's top n, last 90 days).
    affinity_top_n: int = Field(default=3, ge=1, le=50)

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        if 30 not in value:
            raise ValueError("windows_days must include 30 (lifecycle and models use it)")
        return sorted(set(value))


class SegmentRule(StrictModel):
    name: str = Field(min_length=1)
    # A boolean Spark SQL expression over a segment's centre (medians in original units).
    when: str


class SegmentationConfig(StrictModel):
    # k is chosen in [k_min, k_max] by silhouette on a sample of users.
    k_min: int = Field(default=3, ge=2, le=50)
    k_max: int = Field(default=8, ge=2, le=50)
    sample_size: int = Field(default=20_000, ge=100)
    # Keep the previous model's k unless another k's silhouette is better by more than this.
    k_switch_margin: float = Field(default=0.02, ge=0)
    seed: int = 7
    max_iter: int = Field(default=40, ge=1)
    # KMeans starts per fit (consecutive seeds); the lowest-cost one is kept.
    restarts: int = Field(default=3, ge=1, le=20)
    # A retrained segment whose centre shifted more than this (in standard deviations of the
    # inputs) keeps its id but is reported as `moved`.
    moved_distance: float = Field(default=1.0, gt=0)
    # A segment is named by what sets its centre apart: its most distinctive features by
    # population quantile, in at most this many words unless more tell two segments apart.
    name_words: int = Field(default=3, ge=1, le=6)
    # Called recent only if the centre's recency_days is at most this, lapsed only if more.
    recent_days: int = Field(default=30, ge=1)
    # Optional overrides: the first rule that holds for a segment's centre names it.
    names: list[SegmentRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _range(self) -> SegmentationConfig:
        if self.k_max < self.k_min:
            raise ValueError("k_max must be at least k_min")
        return self


class PropensityConfig(StrictModel):
    # Label: a purchase within label_days of the snapshot.
    label_days: int = Field(default=30, ge=1)
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    # Elastic-net grid searched by TrainValidationSplit on the training rows.
    reg_params: list[float] = Field(default_factory=lambda: [0.001, 0.01, 0.1], min_length=1)
    elastic_net_params: list[float] = Field(default_factory=lambda: [0.0, 0.5], min_length=1)
    max_iter: int = Field(default=100, ge=1)
    # The grid is searched on a sample of at most this many training users (each class at
    # least a tenth of it when it has the users); the chosen pair is then fitted on all.
    tune_sample_size: int = Field(default=50_000, ge=1_000)
    seed: int = 7
    # Feed the segment to the classifier too (the seed's y = f(g(x))) and score with that model.
    hybrid: bool = False
    # A single input whose AUC against the label exceeds this is treated as a leak.
    leak_auc: float = Field(default=0.98, gt=0.5, le=1)

    @field_validator("reg_params")
    @classmethod
    def _reg_grid(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value):
            raise ValueError("regularisation strengths must be >= 0")
        return value

    @field_validator("elastic_net_params")
    @classmethod
    def _mix_grid(cls, value: list[float]) -> list[float]:
        if any(not 0 <= v <= 1 for v in value):
            raise ValueError("elastic-net mixing values must be between 0 (L2) and 1 (L1)")
        return value


def _default_rfm_segments() -> list[SegmentRule]:
    """The usual RFM grid over recency and frequency scores, most specific first."""
    grid = [
        ("champions", "r_score >= 4 AND f_score >= 4"),
        ("loyal", "r_score >= 3 AND f_score >= 4"),
        ("new customers", "r_score >= 4 AND f_score = 1"),
        ("potential loyalists", "r_score >= 4"),
        ("need attention", "r_score = 3 AND f_score >= 2"),
        ("about to sleep", "r_score = 3"),
        ("cannot lose them", "f_score = 5"),
        ("at risk", "f_score >= 3"),
        ("hibernating", "true"),
    ]
    return [SegmentRule(name=n, when=w) for n, w in grid]


class RfmConfig(StrictModel):
    # First matching rule over r_score, f_score, m_score (1-5) names a purchaser's RFM segment.
    segments: list[SegmentRule] = Field(default_factory=_default_rfm_segments, min_length=1)


class RecommendationsConfig(StrictModel):
    # next_best_categories: this many, by user_weight x own share + the rest x segment share.
    top_n: int = Field(default=3, ge=1, le=20)
    user_weight: float = Field(default=0.7, ge=0, le=1)


class ClvConfig(StrictModel):
    # Expected purchases and value (BG/NBD x Gamma-Gamma) are predicted over this many days.
    horizon_days: int = Field(default=90, ge=1, le=3650)


class LifecycleConfig(StrictModel):
    new_days: int = Field(default=30, ge=1)
    active_days: int = Field(default=30, ge=1)
    churn_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleConfig:
        if self.churn_days <= self.active_days:
            raise ValueError("churn_days must be greater than active_days")
        return self


class TagRule(StrictModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    owner: str = "data-team"
    category: str = "behaviour"
    # A boolean Spark SQL expression over user_features columns.
    rule: str


class Settings(StrictModel):
    environment: Literal["local", "cluster", "databricks", "test"] = "local"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    propensity: PropensityConfig = Field(default_factory=PropensityConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    rfm: RfmConfig = Field(default_factory=RfmConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    recommendations: RecommendationsConfig = Field(default_factory=RecommendationsConfig)
    tags: list[TagRule] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[TagRule]) -> list[TagRule]:
        names = [t.name for t in value]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicate tag name(s): {', '.join(duplicated)}")
        return value
