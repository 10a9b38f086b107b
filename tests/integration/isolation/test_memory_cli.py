"""`gemma-service memory import|search --owner` on the store a running server uses (SQLite file
and PostgreSQL): what the CLI stores for an owner is that owner's over HTTP, and nobody else's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import ALICE, BOB, Deployment, unique_word

# Each backend's server starts (model and embedder) inside the first test's time.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def memory_cli(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    store = ["--data-dir", str(deployment.data_dir)]
    if deployment.memory_url is not None:
        store += ["--memory-url", deployment.memory_url]
    cmd = [sys.executable, "-m", "gemma_service.cli", "memory", *args, *store]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def test_the_cli_stores_and_searches_as_the_owner_it_names(
    deployment: Deployment, http: httpx.Client, tmp_path: Path
) -> None:
    word = unique_word()
    lines = tmp_path / "alice.jsonl"
    lines.write_text(json.dumps({"text": f"{word}: the alarm code is 5150", "speaker": "Sam"}))

    imported = memory_cli(deployment, "import", str(lines), "--owner", "alice", "--quiet")
    assert "stored 1 memory item(s)" in imported.stdout and "'alice'" in imported.stdout

    # Key 'alice' owns what the CLI stored for 'alice'; key 'bob' cannot see it.
    [hit] = http.get("/v1/memories/search", params={"q": word}, headers=ALICE.headers()).json()[
        "results"
    ]
    assert hit["owner"] == "alice"
    bob = http.get("/v1/memories/search", params={"q": word}, headers=BOB.headers()).json()
    assert hit["id"] not in {h["id"] for h in bob["results"]}
    assert http.get(f"/v1/memories/{hit['id']}", headers=BOB.headers()).status_code == 404

    as_bob = memory_cli(deployment, "search", word, "--owner", "bob").stdout
    as_alice = memory_cli(deployment, "search", word, "--owner", "alice").stdout
    assert hit["id"] not in as_bob and "5150" not in as_bob
    assert hit["id"] in as_alice and "5150" in as_alice and "(alice)" in as_alice
