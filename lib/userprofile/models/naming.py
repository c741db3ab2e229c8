"""Segment names that say what sets a segment apart from the population.

Each naming feature's percentiles 0, 1, ..., 100 over the training users are
computed in Spark (``population_quantiles``: 101 numbers per feature reach the
driver, never user rows). A segment centre's value then sits at a quantile q of
that distribution (``quantile_position``). The features whose q is farthest from
the median describe the segment, each in a small fixed vocabulary
(``WORDS``: recency_days low -> "recent", high -> "lapsed"; a "very" form
beyond the 10th and 90th percentiles); a recency word must also agree with the
centre's days (``recent_days``), as the lifecycle stage does. Names are unique
without numbers: segments that would share their words all take the most
distinctive feature on which they differ, until they do (``unique_names``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

PERCENTILES = [i / 100 for i in range(101)]
# percentile_approx's accuracy: relative error 1/ACCURACY of the rank.
ACCURACY = 10_000
# A feature describes a segment when its centre lies outside the population's middle half...
DISTINCT = 0.25
# ...and earns the "very" form below this quantile or above 1 minus it.
VERY = 0.1
RECENCY = "recency_days"
# Features within this many quantiles of each other are equally distinctive: the one farther
# from the population's median in spreads (see ``magnitude``) comes first.
TIE = 0.05
# Prefix of the centre columns the naming reads (medians of the naming features).
CENTRE_PREFIX = "naming_"
# A segment with no feature away from the median.
TYPICAL = "typical"


# feature -> words below the median, above it, "very" below, "very" above, and at 0 (when
# below); in order of preference when two features are equally distinctive.
WORDS: dict[str, tuple[str, str, str, str, str | None]] = {
    RECENCY: ("recent", "lapsed", "very recent", "long lapsed", None),
    "orders_90d": ("few orders", "frequent", "very few orders", "very frequent", "no orders"),
    "revenue_90d": ("low spend", "high spend", "very low spend", "very high spend", "no spend"),
    "sessions_90d": ("low activity", "active", "very low activity", "very active", "inactive"),
    "tenure_days": ("new", "long-standing", "very new", "veteran", None),
    "orders_per_session": (
        "low conversion",
        "converting",
        "rarely buying",
        "decisive",
        "never bought",
    ),
    "avg_item_price": ("cheap items", "pricey items", "very cheap items", "luxury items", None),
    "avg_order_value": ("small baskets", "large baskets", "tiny baskets", "huge baskets", None),
    "search_share": ("few searches", "searching", "rarely search", "search-heavy", "no searches"),
    "mobile_share": ("desktop-leaning", "mobile-leaning", "desktop", "mobile", "desktop only"),
    "night_share": ("daytime", "night-time", "strictly daytime", "night owls", "daytime only"),
    "activity_trend": ("slowing down", "picking up", "dropping off", "surging", None),
}
# feature -> (the lower, the higher): only between segments alike in every word.
COMPARATIVES: dict[str, tuple[str, str]] = {
    RECENCY: ("more recent", "less recent"),
    "orders_90d": ("fewer orders", "more orders"),
    "revenue_90d": ("lower spend", "higher spend"),
    "sessions_90d": ("less activity", "more activity"),
    "tenure_days": ("newer", "older"),
    "orders_per_session": ("lower conversion", "higher conversion"),
    "avg_item_price": ("cheaper items", "pricier items"),
    "avg_order_value": ("smaller baskets", "larger baskets"),
    "search_share": ("fewer searches", "more searches"),
    "mobile_share": ("less mobile", "more mobile"),
    "night_share": ("less at night", "more at night"),
    "activity_trend": ("cooling", "warming"),
}
NAMING_FEATURES = tuple(WORDS)

Quantiles = Mapping[str, Sequence[float]]


def naming_value(feature: str) -> Column:
    # Null (never seen, no denominator, idle) is left out of percentiles and medians: a
    # segment of users never seen is not "lapsed", it has no recency.
    return F.col(feature).cast("double")


def population_quantiles(features: DataFrame) -> dict[str, tuple[float, ...]]:
    """Percentiles 0..100 of each naming feature over all rows: one aggregation in Spark.

    A feature without any value gets no percentiles (it describes no segment).
    """
    row = features.agg(
        *[
            F.percentile_approx(naming_value(f), PERCENTILES, ACCURACY).alias(f)
            for f in NAMING_FEATURES
        ]
    ).first()
    assert row is not None  # a global aggregation has one row
    return {f: tuple(float(x) for x in row[f]) if row[f] else () for f in NAMING_FEATURES}


def centre_medians() -> list[Column]:
    """Per-cluster medians of the naming features, to aggregate beside the centre.

    Null where most of the cluster has no value (e.g. the trend of idle users):
    the few who have one do not speak for the segment.
    """
    return [
        F.when(
            F.count(naming_value(f)) * 2 > F.count(F.lit(1)),
            F.percentile_approx(naming_value(f), 0.5, ACCURACY),
        ).alias(CENTRE_PREFIX + f)
        for f in NAMING_FEATURES
    ]


def centre_of(row: Row) -> dict[str, float | None]:
    """The naming centre of a row aggregated with ``centre_medians``."""
    return {f: row[CENTRE_PREFIX + f] for f in NAMING_FEATURES}


def quantile_position(value: float, percentiles: Sequence[float]) -> float:
    """Where ``value`` sits in a distribution given by its percentiles 0..100, in [0, 1].

    Between two percentiles it is interpolated; on a run of equal percentiles (many
    users with the same value, e.g. no searches) it is the middle of the run, so a
    feature that is the same for everyone sits at 0.5 and describes nobody.
    """
    steps = len(percentiles) - 1
    below = bisect_left(percentiles, value)
    through = bisect_right(percentiles, value)
    if below < through:
        return (below + through - 1) / (2 * steps)
    if below == 0:
        return 0.0
    if below > steps:
        return 1.0
    low, high = percentiles[below - 1], percentiles[below]
    return (below - 1 + (value - low) / (high - low)) / steps


@dataclass(frozen=True)
class Trait:
    """One feature of a segment centre: its quantile in the population and its word."""

    feature: str
    quantile: float
    word: str
    magnitude: float = 0.0

    @property
    def strength(self) -> float:
        return abs(self.quantile - 0.5)

    def rank(self) -> tuple[int, float]:
        """Sort key, most distinctive first: strength in steps of TIE, then magnitude."""
        return -math.floor(self.strength / TIE), -self.magnitude


def _word(feature: str, value: float, quantile: float) -> str:
    low, high, very_low, very_high, zero = WORDS[feature]
    if quantile < 0.5:
        if value == 0 and zero is not None:
            return zero
        return very_low if quantile <= VERY else low
    return very_high if quantile >= 1 - VERY else high


def traits(
    centre: Mapping[str, float | None], quantiles: Quantiles, recent_days: int
) -> list[Trait]:
    """The centre's traits, most distinctive first (``Trait.rank``, then ``WORDS`` order).

    A recency word must also agree with the lifecycle's idea of recent: "recent"
    only when the centre's recency_days is at most ``recent_days``, "lapsed" only
    when it is more; otherwise recency does not describe the segment.
    """
    found: list[Trait] = []
    for feature in NAMING_FEATURES:
        value, percentiles = centre.get(feature), quantiles.get(feature, ())
        if value is None or math.isnan(value) or not percentiles:
            continue
        quantile = quantile_position(value, percentiles)
        if quantile == 0.5:
            continue
        if feature == RECENCY and (quantile < 0.5) != (value <= recent_days):
            continue
        word = _word(feature, value, quantile)
        found.append(Trait(feature, quantile, word, magnitude(value, percentiles)))
    return sorted(found, key=Trait.rank)


def magnitude(value: float, percentiles: Sequence[float]) -> float:
    """Distance from the population's median in interquartile ranges (for a feature mostly
    at one value, in ranges between percentiles 10 and 90, else 0 and 100)."""
    steps = len(percentiles) - 1
    for lower in (25, 10, 0):
        spread = percentiles[steps - lower * steps // 100] - percentiles[lower * steps // 100]
        if spread > 0:
            return abs(value - percentiles[steps // 2]) / spread
    return 0.0


def positions(centre: Mapping[str, float | None], quantiles: Quantiles) -> dict[str, float]:
    """Every feature's quantile, for comparatives between otherwise alike segments."""
    return {
        f: quantile_position(v, quantiles[f])
        for f, v in centre.items()
        if v is not None and not math.isnan(v) and quantiles.get(f)
    }


@dataclass
class Draft:
    """A name being made: an override rule's name (or None) and the words chosen so far."""

    key: int
    head: str | None
    traits: list[Trait]
    positions: dict[str, float] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    described: bool = False

    def signature(self) -> tuple[str | None, frozenset[str]]:
        return self.head, frozenset(self.words)

    def render(self) -> str:
        words = ", ".join(self.words)
        if self.head is None:
            return words or TYPICAL
        return f"{self.head} ({words})" if words else self.head

    def add(self, feature: str, word: str | None) -> None:
        self.used.add(feature)
        if word is not None and word not in self.words:
            self.words.append(word)

    def word_for(self, feature: str) -> str | None:
        return next((t.word for t in self.traits if t.feature == feature), None)

    def describe(self, name_words: int) -> None:
        """Up to ``name_words`` words of the features outside the middle half (at least one)."""
        chosen = [t for t in self.traits if t.strength >= DISTINCT][:name_words] or self.traits[:1]
        for t in chosen:
            self.add(t.feature, t.word)
        self.described = True


def draft(
    key: int,
    head: str | None,
    centre: Mapping[str, float | None],
    quantiles: Quantiles,
    recent_days: int,
) -> Draft:
    """A segment's draft name: its override rule's name (or None) and its centre's traits."""
    return Draft(key, head, traits(centre, quantiles, recent_days), positions(centre, quantiles))


def unique_names(drafts: list[Draft], taken: Collection[str], name_words: int) -> dict[int, str]:
    """Name each draft (by key): its override, else up to ``name_words`` distinctive words.

    Drafts that would share a name, or take one in ``taken`` (kept segments'),
    get more words until they differ: an override first its description, then each
    the word of the most distinctive feature on which they differ, then comparatives
    ("more recent" / "less recent") where every word agrees; the key as a last resort.
    """
    for d in drafts:
        if d.head is None:
            d.describe(name_words)
    reserved = {_canonical(name) for name in taken}
    for _ in range(len(drafts) * (2 * len(WORDS) + 1)):
        groups: dict[tuple[str | None, frozenset[str]], list[Draft]] = defaultdict(list)
        for d in drafts:
            groups[d.signature()].append(d)
        clashes = [g for g in groups.values() if len(g) > 1]
        clashes += [[d] for d in drafts if _canonical(d.render()) in reserved]
        if not clashes:
            break
        for group in clashes:
            _tell_apart(group, name_words)
    return {d.key: d.render() for d in drafts}


def _canonical(name: str) -> frozenset[str]:
    return frozenset(name.split(", "))


def _tell_apart(group: list[Draft], name_words: int) -> None:
    """One step towards different names for a group sharing one (or a single draft whose
    name is taken): descriptions, else a differing feature's words, else a comparative,
    else the key."""
    if any(not d.described for d in group):
        for d in group:
            if not d.described:
                d.describe(name_words)
        return
    free = [f for f in NAMING_FEATURES if all(f not in d.used for d in group)]
    differing = [
        t
        for d in group
        for t in d.traits
        if t.feature in free
        and (len(group) == 1 or len({m.word_for(t.feature) for m in group}) > 1)
    ]
    if differing:
        distinctive = min(differing, key=Trait.rank).feature
        for d in group:
            d.add(distinctive, d.word_for(distinctive))
        return
    # Every word agrees: compare by degree, on the feature where they are farthest apart.
    compared = [f for f in NAMING_FEATURES if all(f"{f} compared" not in d.used for d in group)]
    spread = {f: _spread([d.positions.get(f, 0.5) for d in group]) for f in compared}
    widest = max(compared, key=lambda f: spread[f], default=None)
    if len(group) > 1 and widest is not None and spread[widest] > 0:
        lower, higher = COMPARATIVES[widest]
        quantiles = [d.positions.get(widest, 0.5) for d in group]
        middle = (max(quantiles) + min(quantiles)) / 2
        for d, q in zip(group, quantiles, strict=True):
            d.add(f"{widest} compared", higher if q > middle else lower)
        return
    for d in group[1:] or group:
        d.add(f"key:{d.key}", f"segment {d.key}")


def _spread(quantiles: list[float]) -> float:
    return max(quantiles) - min(quantiles)
