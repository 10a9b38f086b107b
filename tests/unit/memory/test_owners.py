"""Owner scopes: what a store query may read, and which strings can own objects."""

from __future__ import annotations

import pytest

from gemma_service.memory.owners import EVERY_OWNER, LOCAL_OWNER, OwnerScope, check_owner


def test_a_scope_reads_its_owner_only_unless_it_reaches_every_owner() -> None:
    alice = OwnerScope("alice")
    admin = OwnerScope("ops", every_owner=True)

    assert alice.sql("i.owner") == ("i.owner = ?", ["alice"])
    assert alice.sql(placeholder="%s") == ("owner = %s", ["alice"])
    assert admin.sql() == ("1 = 1", [])
    assert alice.reads("alice") and not alice.reads("bob") and not alice.reads(None)
    assert admin.reads("bob") and admin.owner == "ops"
    assert OwnerScope.local() == OwnerScope(LOCAL_OWNER)


@pytest.mark.parametrize("owner", ["", EVERY_OWNER, "x" * 257, "line\nbreak"])
def test_some_strings_cannot_own_anything(owner: str) -> None:
    with pytest.raises(ValueError):
        check_owner(owner)
    with pytest.raises(ValueError):
        OwnerScope(owner)


def test_owner_forms_of_every_credential_can_own() -> None:
    for owner in ("alice", "key:3fa2b1c4d5e6", "jwt:auth0|123", "tenant:acme", LOCAL_OWNER):
        assert check_owner(owner) == owner
