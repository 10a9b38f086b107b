"""Per-caller rate limits over real HTTP: 429 with Retry-After, each caller on its own budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    env = {
        "GEMMA_API_KEYS": "sk-rpm,sk-tpm,sk-other",
        "GEMMA_RATE_LIMIT_RPM": "3",
        "GEMMA_RATE_LIMIT_TPM": "40",
    }
    args = ["--model", str(model_path), "--ctx-size", "2048", "--threads", "2"]
    server = start_server(tmp_path_factory.mktemp("limited"), *args, env=env)
    yield server
    stop_server(server)


def test_requests_per_minute(limited: RunningServer) -> None:
    with httpx.Client(base_url=limited.url, headers={"X-Api-Key": "sk-rpm"}) as http:
        assert [http.get("/v1/models").status_code for _ in range(3)] == [200] * 3
        refused = http.get("/v1/models")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "requests_per_minute_exceeded"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    other = httpx.get(limited.url + "/v1/models", headers={"X-Api-Key": "sk-other"})
    assert other.status_code == 200


def test_tokens_per_minute(limited: RunningServer) -> None:
    with httpx.Client(base_url=limited.url, headers={"X-Api-Key": "sk-tpm"}, timeout=60) as http:
        # The prompt alone is over the budget, whatever the model answers.
        story = "Tell me a story about a lighthouse keeper and a message in a bottle. " * 4
        body = {"messages": [{"role": "user", "content": story}], "max_tokens": 4}
        first = http.post("/v1/chat/completions", json=body)
        assert first.status_code == 200 and first.json()["usage"]["prompt_tokens"] >= 40
        refused = http.post("/v1/chat/completions", json={**body, "max_tokens": 1})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "tokens_per_minute_exceeded"
        assert int(refused.headers["Retry-After"]) >= 1
