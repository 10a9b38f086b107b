"""Static API keys, from GEMMA_API_KEYS and a keys file, checked in constant time.

An entry is ``KEY`` or ``NAME:KEY``, optionally followed by flags (``admin``) after a space.
A named key's data belongs to its name, so several keys with one name (a rotation) share it;
an unnamed key's data belongs to the key's fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KEY_FLAGS = frozenset({"admin"})
# No ':' in a name, so a name never equals the fingerprint form ('key:…') or a JWT owner.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class KeyConfigError(ValueError):
    """A key entry cannot be used as written (the message never repeats the key)."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One configured key: the secret, its name (None: unnamed) and whether it is an admin."""

    key: str
    name: str | None = None
    admin: bool = False


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Whom a matched key stands for. ``id`` is safe to log (a name, or a fingerprint: ``key:``
    and 12 hex digits of the key's SHA-256); ``owner`` owns the data stored with the key."""

    id: str
    owner: str
    admin: bool


def parse_key_entry(entry: str) -> KeyEntry:
    """``KEY`` or ``NAME:KEY``, then optional flags; KeyConfigError names what is wrong."""
    words = entry.split()
    if not words:
        raise KeyConfigError("an empty key")
    credential, flags = words[0], words[1:]
    if any(flag not in KEY_FLAGS for flag in flags):
        # Not repeated: a stray space may have split a key into "flags".
        raise KeyConfigError("an unknown key flag after the key (the one flag is 'admin')")
    name, colon, key = credential.partition(":")
    if not colon:
        return KeyEntry(credential, None, "admin" in flags)
    if not _KEY_NAME.fullmatch(name):
        # Not repeated either: it may be the start of a key that holds a ':'.
        raise KeyConfigError(
            "what comes before ':' is not a key name: use letters, digits and . _ @ - "
            "(at most 64, starting with a letter or digit)"
        )
    if not key:
        raise KeyConfigError(f"the key named {name!r} is empty")
    return KeyEntry(key, name, "admin" in flags)


def read_keys_file(path: Path) -> list[KeyEntry]:
    """One entry per line; blank lines and lines starting with '#' are skipped."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            entries.append(parse_key_entry(text))
        except KeyConfigError as exc:
            raise KeyConfigError(f"{path} line {number}: {exc}") from None
    return entries


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _holder(entry: KeyEntry, digest: bytes) -> KeyHolder:
    if entry.name is not None:
        return KeyHolder(f"key:{entry.name}", entry.name, entry.admin)
    fingerprint = "key:" + digest.hex()[:12]
    return KeyHolder(fingerprint, fingerprint, entry.admin)


class StaticKeys:
    """A set of API keys. Lookup compares digests with ``hmac.compare_digest`` against every
    key, so neither the position of a match nor a key's length shows in the timing."""

    def __init__(self, entries: Sequence[KeyEntry]) -> None:
        holders: dict[bytes, KeyHolder] = {}
        for entry in entries:
            digest = _digest(entry.key)
            holder = _holder(entry, digest)
            if holders.setdefault(digest, holder) != holder:
                raise KeyConfigError(
                    f"one key is listed twice, as {holders[digest].id} and as {holder.id}"
                )
        self._holders = list(holders.items())

    @classmethod
    def of(cls, keys: Sequence[str]) -> StaticKeys:
        """Keys given as entries (``KEY``, ``NAME:KEY``, flags)."""
        return cls([parse_key_entry(k) for k in keys])

    def __len__(self) -> int:
        return len(self._holders)

    def match(self, candidate: str) -> KeyHolder | None:
        """Whom the key stands for, or None when it is not one of these keys."""
        probe = _digest(candidate)
        found: KeyHolder | None = None
        for digest, holder in self._holders:
            if hmac.compare_digest(probe, digest):
                found = holder
        return found
