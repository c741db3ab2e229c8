"""Where things are stored: a local path or any Hadoop URI, joined without touching the disk.

A location is a URI with a scheme (``s3a://bucket/up``, ``abfss://c@acct.dfs.core.windows.net/up``,
``gs://b/up``, ``hdfs://nn:8020/up``, ``dbfs:/up``, ``file:///data/up``) or a local path
(``/Volumes/main/up/landing``, ``data/warehouse``). A URI is joined as text: its scheme and
authority are kept and the local file system is never asked about it. Only a relative local
path is made absolute, against the current directory of the process that loads the config.
"""

from __future__ import annotations

import os
import posixpath
import re
from urllib.parse import unquote, urlsplit

# Two or more characters before the colon: ``C:\data`` is a Windows drive, not a scheme.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def is_uri(location: str) -> bool:
    """Whether the location names its file system (``s3a://...``, ``dbfs:/...``, ``file:/...``)."""
    return bool(_SCHEME.match(location))


def is_absolute(location: str) -> bool:
    """A URI or an absolute local path: used as given, never joined under another location."""
    return is_uri(location) or os.path.isabs(location)


def absolute(location: str) -> str:
    """The location itself if it is a URI or absolute; a relative local path made absolute."""
    return location if is_absolute(location) else os.path.abspath(location)


def join(base: str, name: str) -> str:
    """``name`` under ``base``; ``name`` itself when it is already a URI or an absolute path.

    >>> join("s3a://bucket/up", "gold/user_profile")
    's3a://bucket/up/gold/user_profile'
    >>> join("dbfs:/up/", "./gold")
    'dbfs:/up/gold'
    """
    if is_absolute(name):
        return name
    if not is_uri(base):
        return os.path.abspath(os.path.join(base, name))
    parts = urlsplit(base)
    prefix = base[: len(base) - len(parts.path)] if parts.path else base
    # normpath on the path part only: it would fold the ``//`` of ``s3a://``.
    path = posixpath.normpath(posixpath.join(parts.path or "/", name))
    if path.startswith("//"):  # POSIX keeps a leading double slash
        path = path[1:]
    return prefix + path


def local_path(location: str) -> str | None:
    """The local file system path of a location, or None if it is on another file system.

    ``file:`` URIs and plain paths (including FUSE mounts such as ``/Volumes/...`` and
    ``/dbfs/...`` on Databricks) are local; ``s3a:``, ``abfss:``, ``dbfs:`` ... are not.
    """
    if not is_uri(location):
        return os.path.abspath(location)
    parts = urlsplit(location)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    return None


def path_part(location: str) -> str:
    """The path of a location without scheme and authority (``s3a://b/x/y`` -> ``/x/y``)."""
    return urlsplit(location).path if is_uri(location) else os.path.abspath(location)
