"""Stable keys and seeds: what cached work is named by, and how members are seeded."""

from __future__ import annotations

import hashlib
import json
import zlib


def file_digest(path) -> str:
    """16 hex characters of a file's sha256: what a file held when it was used."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def digest(obj) -> str:
    """12 hex characters identifying a JSON-able value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def member_seed(seed: int, round_: int, label: str) -> int:
    """A member's training seed depends on the run seed, its round and its name only, not on run order."""
    return zlib.crc32(f"{seed}/{round_}/{label}".encode())
