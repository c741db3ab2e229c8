"""Pseudonymisation: HMAC-SHA256 of identifiers under a secret key that no record keeps.

The key must not appear in anything the pipeline leaves behind: query plans (EXPLAIN,
the Spark UI, event logs, error messages), tables, models, checkpoints or reports.
So the hash is not built from Spark expressions, where the key would be a literal of
the plan (printed by EXPLAIN, shown in the UI, written to event logs).
It is an Arrow-optimised pandas UDF whose closure holds the key:

* plans show the function only by its name, ``pseudonym(encode(user_id#12, UTF-8))``;
* the key travels inside the pickled function, which Spark ships to the executors in
  the serialized task (not in the plan, the listener events or the event log);
* over Spark Connect the pickled function is a bytes field of the plan, and the server
  cuts bytes fields to their first 8 bytes in the statement text it posts to listeners
  (Connect UI, event log: ``ProtoUtils.abbreviate``, ``SparkListenerConnectOperationStarted``).

Spark encodes the string to UTF-8 (as before: malformed text becomes U+FFFD) and the
UDF hashes the bytes; null stays null. It needs pandas and pyarrow where the Python
workers run (dependencies of this package; Databricks runtimes have them). It is about
2.5x slower than Spark's native ``sha2`` (~0.5 M ids/s on 2 local cores), a small share
of an ingest.

What this does not cover: Spark's local dirs (``spark.local.dir``) may briefly hold
task binaries, as they hold shuffle and spill files of the raw data; ``--verbose``
tracebacks and debug logs of Spark or of the Connect client are for a trusted
operator's terminal (with ``SPARK_CONNECT_LOG_LEVEL=debug`` the client logs whole
requests, the pickled function and so the key included). Protect those as you
protect the raw data.

The demo key (``DEMO_KEY``) is published in the Makefile; ``pseudonym_key`` accepts it
only when the landing folder holds exactly the sample that ``userprofile generate``
wrote, as its marker file lists it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import pandas_udf

from userprofile.config import Settings
from userprofile.errors import ConfigError
from userprofile.io import locations

_BLOCK = 64  # SHA-256 block size in bytes
# Published with the repo (Makefile `demo`): accepted only on the generator's sample.
DEMO_KEY = "demo-key-not-secret-0123456789abcdef"
# Written by `userprofile generate` at the landing root: the files it wrote and their sizes.
SAMPLE_MARKER = "_userprofile_sample.json"
_MARKER_KIND = "userprofile generate sample"


# Columns of raw identifiers or raw text: Delta must not copy their values into its log
# as per-file min/max statistics, which no delete or vacuum removes.
RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze_events": ("user_id", "anonymous_id", "session_id", "email", "ip", "_rescued_data"),
    "bronze_quarantine": ("raw_record",),
}


def pseudonym(key: bytes, raw_id: str) -> str:
    """The pseudonym of one id on the driver: the same value as ``hmac_sha256_hex``."""
    return hmac.new(key, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()


def hmac_sha256_hex(key: bytes, value: Column) -> Column:
    """Hex HMAC-SHA256 of a string column under ``key``; null stays null."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in padded)
    outer_pad = bytes(b ^ 0x5C for b in padded)

    # Runs in the Python workers: only the pads, hashlib and pandas may be used here
    # (no userprofile import: over Spark Connect the server need not have the package).
    def pseudonym(values: pd.Series) -> pd.Series:
        # RFC 2104 with both pad blocks hashed once per batch: copying a hash state is
        # about 3x faster than hmac.new or hmac.digest per value.
        inner, outer = hashlib.sha256(inner_pad).copy, hashlib.sha256(outer_pad).copy
        hashed: list[str | None] = []
        for raw in values:
            if raw is None:
                hashed.append(None)
                continue
            step = inner()
            step.update(raw)
            final = outer()
            final.update(step.digest())
            hashed.append(final.hexdigest())
        return pd.Series(hashed, index=values.index, dtype=object)

    # UTF-8 bytes from Spark: Arrow cannot carry a malformed string, and this keeps the
    # old native hash's encoding (implicit cast of non-strings, U+FFFD replacement).
    # pyspark's stubs know only the deprecated functionType form; the type hints pick SCALAR.
    udf: Callable[[Column], Column] = pandas_udf(pseudonym, "string")  # type: ignore[call-overload]
    return udf(F.encode(value, "UTF-8"))


def pseudonym_key(settings: Settings) -> bytes:
    """The HMAC key from the environment; a clear error when it is not set, or when it
    is the published demo key and the landing folder is not the generator's sample."""
    var = settings.privacy.pseudonym_key_env
    value = os.environ.get(var, "")
    if len(value) < 16:
        raise ConfigError(
            f"environment variable {var} must hold the pseudonymisation key "
            f"(at least 16 characters; it is {'too short' if value else 'not set'}). "
            f"Set it from your secret store, e.g. export {var}=$(openssl rand -hex 32)"
        )
    if value == DEMO_KEY:
        problem = demo_key_problem(settings)
        if problem is not None:
            raise ConfigError(
                f"environment variable {var} holds the demo key, which is published with "
                f"userprofile: it is accepted only on the sample data of `userprofile "
                f"generate`, and {problem}. Set a secret key of your own, e.g. "
                f"export {var}=$(openssl rand -hex 32)"
            )
    return value.encode("utf-8")


# ---------------------------------------------------------------- the generator's sample


def spark_reads(relative: str) -> bool:
    """Whether Spark's file sources list this path (relative to the folder read).

    Spark skips names starting with ``.`` or ``_`` (but not ``_metadata*``,
    ``_common_metadata*`` or partition folders such as ``_x=1``) and ``*._COPYING_``
    at any level (``InMemoryFileIndex.shouldFilterOutPathName``).
    """
    for name in relative.split("/"):
        hidden = (name.startswith("_") and "=" not in name) or name.startswith(".")
        hidden = hidden or name.endswith("._COPYING_")
        if hidden and not name.startswith(("_metadata", "_common_metadata")):
            return False
    return True


def readable_files(root: Path) -> dict[str, int]:
    """Size of every file under ``root`` that Spark would read, by POSIX relative path."""
    found: dict[str, int] = {}
    # Hadoop's local file system follows symbolic links, so the listing does too.
    for folder, _, names in os.walk(root, followlinks=True):
        for name in names:
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if spark_reads(relative):
                found[relative] = path.stat().st_size
    return found


def write_sample_marker(landing: str, folders: Iterable[str]) -> Path | None:
    """Record the files ``userprofile generate`` wrote under ``folders`` of a local landing
    folder (None, nothing written, for other file systems: the demo key is refused there)."""
    root = locations.local_path(landing)
    if root is None:
        return None
    files: dict[str, int] = {}
    for folder in folders:
        listed = readable_files(Path(root, folder))
        files.update({f"{folder}/{name}": size for name, size in listed.items()})
    marker = Path(root, SAMPLE_MARKER)
    marker.write_text(json.dumps({"kind": _MARKER_KIND, "files": files}, indent=1), "utf-8")
    return marker


def remove_sample_marker(landing: str) -> None:
    """Forget the sample before the generator rewrites it (a failed run leaves no marker)."""
    root = locations.local_path(landing)
    if root is not None:
        Path(root, SAMPLE_MARKER).unlink(missing_ok=True)


def demo_key_problem(settings: Settings) -> str | None:
    """Why the landing folder is not (only) the generator's sample; None when it is."""
    landing = settings.storage.landing
    root = locations.local_path(landing)
    if root is None:
        return f"the landing folder {landing} is not on the local file system"
    outside = _read_outside(settings, root)
    if outside:
        return f"{outside} is read from outside the landing folder {root}"
    marker = Path(root, SAMPLE_MARKER)
    try:
        recorded = json.loads(marker.read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return (
            f"{root} has no readable {SAMPLE_MARKER} (written by `userprofile generate`; "
            f"`make clean` and `make demo` start the sample afresh)"
        )
    present = readable_files(Path(root))
    extra = sorted(set(present) - set(recorded))
    if extra:
        return f"{len(extra)} file(s) in {root} are not the generator's, e.g. {extra[0]}"
    changed = sorted(name for name, size in present.items() if recorded[name] != size)
    if changed:
        return f"{len(changed)} generated file(s) in {root} changed size, e.g. {changed[0]}"
    return None


def _read_outside(settings: Settings, root: str) -> str | None:
    """The first input location (an event source, the CRM users) not under ``root``."""
    landing = settings.storage.landing
    inputs = {f"source {name}": s.path for name, s in settings.ingest.sources.items() if s.enabled}
    inputs["the CRM users"] = settings.ingest.users_path
    real_root = os.path.realpath(root)
    for what, path in inputs.items():
        local = locations.local_path(locations.join(landing, path))
        if local is None or not _is_under(os.path.realpath(local), real_root):
            return f"{what} ({path})"
    return None


def _is_under(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root
