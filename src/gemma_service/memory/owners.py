"""Owners: whose stored objects (memories, conversations, stored responses) a call may reach.

Every stored object has an owner, a string the API layer derives from the caller's
credentials (docs/security.md, "Owners"). Stores take an ``OwnerScope`` on every call and put
``OwnerScope.sql()`` into the query's WHERE clause, so another owner's rows are never read, not
even to be filtered out afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

# The one owner of everything when auth is off (loopback development), the memory CLI's default
# owner, and where rows stored before owners existed go unless GEMMA_LEGACY_OWNER says otherwise.
LOCAL_OWNER = "local"
MAX_OWNER_CHARS = 256
# What an admin sends (X-Gemma-Owner) to read every owner's objects.
EVERY_OWNER = "*"


def check_owner(owner: str) -> str:
    """``owner`` if it can own objects: not empty, not '*', printable, at most 256 characters."""
    if not owner or owner == EVERY_OWNER:
        raise ValueError(f"{owner!r} cannot own anything: name one owner")
    if len(owner) > MAX_OWNER_CHARS or not owner.isprintable():
        raise ValueError(f"an owner is at most {MAX_OWNER_CHARS} printable characters")
    return owner


@dataclass(frozen=True, slots=True)
class OwnerScope:
    """The objects one request may see. ``owner`` owns what it creates and is the only owner it
    reads, unless ``every_owner`` (an admin's '*') lets its reads reach every owner's objects.
    A conversation is always ``owner``'s, whatever the reach."""

    owner: str
    every_owner: bool = False

    def __post_init__(self) -> None:
        check_owner(self.owner)

    @classmethod
    def local(cls) -> OwnerScope:
        """The scope of every request when auth is off."""
        return cls(LOCAL_OWNER)

    def sql(self, column: str = "owner", placeholder: str = "?") -> tuple[str, list[str]]:
        """A WHERE condition (and its parameters) that keeps the rows this scope may read."""
        if self.every_owner:
            return "1 = 1", []
        return f"{column} = {placeholder}", [self.owner]

    def reads(self, owner: str | None) -> bool:
        """Whether an object owned by ``owner`` is visible in this scope."""
        return self.every_owner or owner == self.owner
