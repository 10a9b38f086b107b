"""Static API keys, from GEMMA_API_KEYS and a keys file, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_keys_file(path: Path) -> list[str]:
    """One key per line; blank lines and lines starting with '#' are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


class StaticKeys:
    """A set of API keys. Lookup compares digests with ``hmac.compare_digest`` against every
    key, so neither the position of a match nor a key's length shows in the timing."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [_digest(k) for k in dict.fromkeys(keys)]

    def __len__(self) -> int:
        return len(self._digests)

    def match(self, candidate: str) -> str | None:
        """The matching key's fingerprint (safe to log), or None."""
        probe = _digest(candidate)
        found: bytes | None = None
        for digest in self._digests:
            if hmac.compare_digest(probe, digest):
                found = digest
        return None if found is None else "key:" + found.hex()[:12]
