"""`userprofile pipeline`: ingest -> features -> train -> profile for one snapshot date."""

from __future__ import annotations

import datetime as dt

from userprofile.steps.common import RunContext, StepReport
from userprofile.steps.features import run_features
from userprofile.steps.ingest import run_ingest
from userprofile.steps.profile import run_profile
from userprofile.steps.train import run_train


def run_pipeline(ctx: RunContext, as_of: dt.date) -> list[StepReport]:
    return [
        run_ingest(ctx),
        run_features(ctx, as_of),
        run_train(ctx, as_of),
        run_profile(ctx, as_of),
    ]
