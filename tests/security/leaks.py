"""Find a secret key in bytes, files and folders, in every encoding our code or Spark could
print or store it in.

The needles cover the key as given, its hex (both cases), base64 (standard and urlsafe,
searched by a middle part that is the same whatever bytes precede or follow it), UTF-16,
its bytes as printed number lists (Java/Scala ``[108, 101, ...]``, JSON ``[108,101,...]``,
signed for bytes over 127), and the same for the two 64-byte blocks an HMAC derives from
it (the key zero-padded and XORed with 0x36 and with 0x5c), which is what a plan holding
a hand-built HMAC shows. Files are read as stored: compressed files are searched as
compressed (snappy, Delta's default codec, keeps a unique string as one literal run).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path

BLOCK = 64  # SHA-256 block size: HMAC pads the key to it
B64_GROUP = 4  # base64 characters per 3 input bytes


def hmac_pads(key: bytes) -> dict[str, bytes]:
    """The key blocks of HMAC-SHA256: the key (hashed if longer than a block), zero-padded,
    XORed with the inner (0x36) and the outer (0x5c) constant."""
    block = (hashlib.sha256(key).digest() if len(key) > BLOCK else key).ljust(BLOCK, b"\0")
    return {
        "ipad": bytes(b ^ 0x36 for b in block),
        "opad": bytes(b ^ 0x5C for b in block),
    }


def base64_middles(secret: bytes) -> dict[str, bytes]:
    """For each alphabet and each of the 3 alignments the secret can start at in a longer
    encoded text, the part of its base64 that no surrounding byte (or padding) changes."""
    found: dict[str, bytes] = {}
    encoders = {"b64": base64.b64encode, "b64url": base64.urlsafe_b64encode}
    for name, encode in encoders.items():
        for offset in range(3):
            encoded = encode(bytes(offset) + secret)
            # The first group mixes in the preceding bytes, the last the following ones.
            start = B64_GROUP if offset else 0
            found[f"{name}@{offset}"] = encoded[start:-B64_GROUP]
    return found


def number_lists(secret: bytes) -> dict[str, bytes]:
    """The bytes as a printed list of numbers, unsigned and as Java's signed bytes."""
    signed = [b - 256 if b > 127 else b for b in secret]
    found: dict[str, bytes] = {}
    for sep_name, sep in (("comma-space", ", "), ("comma", ",")):
        found[f"unsigned-{sep_name}"] = sep.join(map(str, secret)).encode()
        found[f"signed-{sep_name}"] = sep.join(map(str, signed)).encode()
    return found


def encodings(secret: bytes) -> dict[str, bytes]:
    """Every form of ``secret`` to search for, by a name for failure messages."""
    found = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        **base64_middles(secret),
        **number_lists(secret),
    }
    return found


def needles(key: bytes) -> dict[str, bytes]:
    """The key and its HMAC pad blocks in every encoding, plus the key's text in UTF-16."""
    found = {f"key {name}": value for name, value in encodings(key).items()}
    for pad_name, pad in hmac_pads(key).items():
        found.update({f"{pad_name} {name}": value for name, value in encodings(pad).items()})
    text = key.decode("utf-8", errors="ignore")
    found["key utf-16-le"] = text.encode("utf-16-le")
    found["key utf-16-be"] = text.encode("utf-16-be")
    return found


def leaks_in(data: bytes, key: bytes) -> list[str]:
    """The names of the key's encodings found in ``data``."""
    return [name for name, needle in needles(key).items() if needle in data]


def files_under(roots: Iterable[Path]) -> list[Path]:
    """Every file under the given folders (or the files themselves), hidden ones included."""
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.rglob("*") if p.is_file())
    return found


def leaks_in_files(roots: Iterable[Path], key: bytes) -> dict[str, list[str]]:
    """For each file under ``roots`` holding the key in some encoding, those encodings."""
    found: dict[str, list[str]] = {}
    for path in files_under(roots):
        names = leaks_in(path.read_bytes(), key)
        if names:
            found[str(path)] = names
    return found
