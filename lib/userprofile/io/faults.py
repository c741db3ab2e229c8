"""Kill points: where the fault tests SIGKILL a run, one commit boundary at a time.

``USERPROFILE_TEST_KILL_AT=<point>`` makes the process kill itself with SIGKILL when it
reaches that point, as a lost machine or an OOM killer would: no ``finally``, no log
line, no Spark shutdown. Production never sets it. Every point is listed in
``KILL_POINTS`` so that the tests can prove each one is reached and survived.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "USERPROFILE_TEST_KILL_AT"
KILL_POINTS = (
    # ingest, inside one micro-batch, after each of its commits
    "ingest.after_bronze",
    "ingest.after_quarantine",
    "ingest.after_silver",
    "ingest.after_identities",
    "ingest.after_roll_up",
    # ... after its ingest log row: the batch is written, the checkpoint has not committed it
    "ingest.before_checkpoint_commit",
    # ... after the stream's checkpoint committed the source's batches
    "ingest.after_checkpoint_commit",
    "features.after_write",
    "train.after_models_saved",
    "train.after_segment_summary",
    "profile.after_partition",
    "profile.after_tag_dictionary",
    # every step written, the pipeline run not recorded yet
    "pipeline.before_run_record",
)


def kill_point(name: str) -> None:
    """SIGKILL this process if the fault tests asked for a kill at ``name``."""
    if name not in KILL_POINTS:
        raise ValueError(f"unknown kill point {name!r}")
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
