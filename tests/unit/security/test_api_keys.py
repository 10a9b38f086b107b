"""Static API keys: matched exactly, named or reported by a fingerprint that hides the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_service.api.security.api_keys import (
    KeyConfigError,
    KeyEntry,
    StaticKeys,
    parse_key_entry,
    read_keys_file,
)


def test_only_configured_keys_match() -> None:
    keys = StaticKeys.of(["sk-alpha-0001", "sk-beta-0002"])
    assert keys.match("sk-alpha-0001") is not None
    assert keys.match("sk-beta-0002") is not None
    assert keys.match("sk-alpha-000") is None  # a prefix is not the key
    assert keys.match("sk-alpha-00011") is None
    assert keys.match("") is None


def test_an_unnamed_key_is_its_own_owner_by_a_fingerprint_that_hides_it() -> None:
    keys = StaticKeys.of(["sk-alpha-0001", "sk-beta-0002"])
    first, second = keys.match("sk-alpha-0001"), keys.match("sk-beta-0002")
    assert first is not None and second is not None
    assert first.owner != second.owner
    assert first.id == first.owner and first.owner.startswith("key:")
    assert "alpha" not in first.owner and not first.admin


def test_a_named_key_owns_by_its_name_and_keys_sharing_a_name_share_it() -> None:
    keys = StaticKeys.of(["alice:sk-old-0001", "alice:sk-new-0002", "ops:sk-ops-0003 admin"])
    old, new, ops = (keys.match(k) for k in ("sk-old-0001", "sk-new-0002", "sk-ops-0003"))
    assert old is not None and new is not None and ops is not None
    assert old.owner == new.owner == "alice" and old.id == "key:alice"
    assert ops.owner == "ops" and ops.admin and not old.admin
    assert keys.match("alice:sk-old-0001") is None  # the name is not part of the key


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("alice:sk-1 root", "unknown key flag"),
        ("al ice:sk-1", "unknown key flag"),
        ("alice sk-1", "unknown key flag"),
        ("-x:sk-1", "not a key name"),
        ("alice:", "is empty"),
    ],
)
def test_malformed_entries_are_refused_without_repeating_the_key(entry: str, message: str) -> None:
    with pytest.raises(KeyConfigError, match=message) as refused:
        parse_key_entry(entry)
    assert "sk-1" not in str(refused.value)


def test_one_key_under_two_names_is_refused() -> None:
    with pytest.raises(KeyConfigError, match="listed twice"):
        StaticKeys([KeyEntry("sk-1", "alice"), KeyEntry("sk-1", "bob")])
    assert len(StaticKeys([KeyEntry("sk-1", "alice"), KeyEntry("sk-1", "alice")])) == 1


def test_keys_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team A\nsk-one\n\n  alice:sk-two  \n#sk-disabled\nops:sk-three admin\n")
    assert read_keys_file(path) == [
        KeyEntry("sk-one"),
        KeyEntry("sk-two", "alice"),
        KeyEntry("sk-three", "ops", admin=True),
    ]
    path.write_text("sk-one\nbad name:sk-two\n")
    with pytest.raises(KeyConfigError, match="line 2"):
        read_keys_file(path)
