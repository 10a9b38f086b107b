"""X-Gemma-Owner: the scope a request acts in, and who may name another owner."""

from __future__ import annotations

import pytest

from gemma_service.api.security.owners import scope_for
from gemma_service.api.security.principal import Principal
from gemma_service.errors import InvalidRequestError, PermissionDeniedError
from gemma_service.memory.owners import OwnerScope

ALICE = Principal("key:alice", "api_key", "alice")
OPS = Principal("key:ops", "api_key", "ops", admin=True)


def test_without_the_header_a_request_acts_as_its_own_owner() -> None:
    assert scope_for(ALICE, None) == OwnerScope("alice")
    assert scope_for(ALICE, "") == OwnerScope("alice")
    assert scope_for(ALICE, "alice") == OwnerScope("alice")
    assert scope_for(OPS, None) == OwnerScope("ops")


def test_only_an_admin_may_name_another_owner() -> None:
    for requested in ("bob", "*"):
        with pytest.raises(PermissionDeniedError) as refused:
            scope_for(ALICE, requested)
        assert refused.value.status_code == 403 and refused.value.code == "not_admin"
    assert scope_for(OPS, "bob") == OwnerScope("bob")
    assert scope_for(OPS, "*") == OwnerScope("ops", every_owner=True)
    with pytest.raises(InvalidRequestError):
        scope_for(OPS, "x" * 300)
