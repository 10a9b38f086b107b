"""Schemathesis against our own OpenAPI document, over real HTTP with the real model.

A short run for the suite (150 cases at least); the long run and its command are in
docs/reliability.md. Every operation gets schema-valid and schema-violating cases; none may
answer 5xx, every refusal is in the error shape of its protocol (OpenAI's, Anthropic's,
Ollama's), and the server must still serve a chat afterwards.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

KEY = "sk-fuzz-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Operations without parameters have only a case or two to give; the others give this many.
CASES_PER_OPERATION_AND_MODE = 12
# Every protocol's routes are in the run (the OpenAPI document lists them all).
PROTOCOL_ROUTES = {
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{response_id}"),
    ("DELETE", "/v1/responses/{response_id}"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/api/chat"),
    ("POST", "/api/generate"),
    ("GET", "/api/tags"),
    ("POST", "/api/show"),
    ("GET", "/api/ps"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("POST", "/tokenize"),
    ("POST", "/detokenize"),
}


def in_protocol_shape(path: str, body: Any) -> bool:
    """A refusal as the path's protocol writes errors."""
    if path.startswith("/v1/messages"):
        error = body.get("error") if body.get("type") == "error" else None
        return isinstance(error, dict) and {"type", "message"} <= set(error)
    if path.startswith("/api/"):
        return list(body) == ["error"] and isinstance(body["error"], str)
    return isinstance(body.get("error"), dict) and {"message", "type"} <= set(body["error"])


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    # Small caps keep each accepted case short on two CPU threads (long text is refused early).
    env = {
        "GEMMA_API_KEYS": KEY,
        "GEMMA_DEFAULT_MAX_TOKENS": "4",
        "GEMMA_MAX_TOKENS_CAP": "8",
        "GEMMA_MAX_N": "2",
        "GEMMA_MAX_MESSAGE_CHARS": "2000",
    }
    args = ["--model", str(model_path), "--ctx-size", "2048", "--threads", "2", "--parallel", "4"]
    server = start_server(tmp_path_factory.mktemp("fuzz"), *args, env=env)
    yield server
    stop_server(server)


@pytest.mark.timeout(1800)  # a few hundred cases, some of them generations, on two threads
def test_no_case_gets_a_server_error(fuzzed: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    assert {(op.method.upper(), op.path) for op in operations} >= PROTOCOL_ROUTES
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=CASES_PER_OPERATION_AND_MODE,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=fuzzed.url, headers=AUTH, timeout=120)
                statuses[response.status_code] += 1
                assert response.status_code < 500, (case.method, case.path, response.text)
                if response.status_code >= 400:
                    assert in_protocol_shape(case.path, response.json()), (
                        case.method,
                        case.path,
                        response.text,
                    )

            with contextlib.suppress(Unsatisfiable):  # nothing to violate (no parameters)
                run()
    print(f"fuzz: {sum(statuses.values())} cases, by status {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= 150, statuses
    assert statuses[200] > 0 and statuses[400] > 0  # both accepted and refused cases ran
    chat = {"messages": [{"role": "user", "content": "Still there?"}], "max_tokens": 4}
    after = httpx.post(fuzzed.url + "/v1/chat/completions", json=chat, headers=AUTH, timeout=60)
    assert after.status_code == 200 and httpx.get(fuzzed.url + "/readyz").status_code == 200
