"""The coordinator's durable memory: the last fencing token issued and whether a lease may be live.

A restarted coordinator continues above the stored token, and while the last lease it granted may
still be in use (its holder's clock has not run out), it grants nothing new.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_FILE_NAME = "coordinator-state.json"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What survives a restart: the highest token issued and the TTL of a lease that may be live."""

    last_token: int = 0
    # TTL of the last granted lease if it had not ended when this was written, else 0.
    live_lease_ttl_s: float = 0.0


class CorruptStateError(Exception):
    """The state file exists but cannot be read; starting from 0 could reissue tokens."""


class TokenStore:
    """Reads and atomically rewrites ``coordinator-state.json`` in a directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE_NAME

    def load(self) -> TokenRecord:
        """The stored record; a fresh one when no file exists yet."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return TokenRecord()
        try:
            data = json.loads(raw)
            return TokenRecord(
                last_token=int(data["last_token"]),
                live_lease_ttl_s=float(data.get("live_lease_ttl_s", 0.0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptStateError(f"cannot read {self.path}: {exc}") from exc

    def save(self, record: TokenRecord) -> None:
        """Write the record so that a crash leaves either the old or the new file, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = json.dumps(
            {"last_token": record.last_token, "live_lease_ttl_s": record.live_lease_ttl_s}
        )
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        # The rename itself is only durable once the directory entry is flushed.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
