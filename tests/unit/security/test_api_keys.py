"""Static API keys: matched exactly, reported by a fingerprint that does not reveal the key."""

from __future__ import annotations

from pathlib import Path

from gemma_service.api.security.api_keys import StaticKeys, read_keys_file


def test_only_configured_keys_match() -> None:
    keys = StaticKeys(["sk-alpha-0001", "sk-beta-0002"])
    assert keys.match("sk-alpha-0001") is not None
    assert keys.match("sk-beta-0002") is not None
    assert keys.match("sk-alpha-000") is None  # a prefix is not the key
    assert keys.match("sk-alpha-00011") is None
    assert keys.match("") is None


def test_each_key_has_its_own_fingerprint_which_hides_the_key() -> None:
    keys = StaticKeys(["sk-alpha-0001", "sk-beta-0002"])
    first, second = keys.match("sk-alpha-0001"), keys.match("sk-beta-0002")
    assert first != second
    assert first is not None and first.startswith("key:")
    assert "alpha" not in first


def test_keys_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# team A\nsk-one\n\n  sk-two  \n#sk-disabled\n")
    assert read_keys_file(path) == ["sk-one", "sk-two"]
