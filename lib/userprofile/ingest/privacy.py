"""Pseudonymisation: a keyed hash (HMAC-SHA256) computed natively in Spark.

HMAC(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m)) (RFC 2104), built
from Spark's own ``sha2`` so it runs in the JVM without a Python UDF. The
padded key is a literal in the query plan: treat Spark UI and plan logs of
the pipeline as secret-bearing, as you already must for the raw data.
"""

from __future__ import annotations

import hashlib
import os

from pyspark.sql import Column
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.errors import ConfigError

_BLOCK = 64  # SHA-256 block size in bytes


def hmac_sha256_hex(key: bytes, value: Column) -> Column:
    """Hex HMAC-SHA256 of a string column under ``key``; null stays null."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    inner_pad = bytearray(b ^ 0x36 for b in padded)
    outer_pad = bytearray(b ^ 0x5C for b in padded)
    inner = F.sha2(F.concat(F.lit(inner_pad), F.encode(value, "UTF-8")), 256)
    return F.sha2(F.concat(F.lit(outer_pad), F.unhex(inner)), 256)


def pseudonym_key(settings: Settings) -> bytes:
    """The HMAC key from the environment; a clear error when it is not set."""
    var = settings.privacy.pseudonym_key_env
    value = os.environ.get(var, "")
    if len(value) < 16:
        raise ConfigError(
            f"environment variable {var} must hold the pseudonymisation key "
            f"(at least 16 characters; it is {'too short' if value else 'not set'}). "
            f"Set it from your secret store, e.g. export {var}=$(openssl rand -hex 32)"
        )
    return value.encode("utf-8")
