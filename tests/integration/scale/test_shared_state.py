"""Two gemma-service replicas sharing one real PostgreSQL (GEMMA_MEMORY_URL): a conversation
started on one continues on the other, as behind a load balancer with no stickiness."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gemma_service.memory.scratch_postgres import (
    NoPostgresError,
    PostgresCluster,
    empty_database,
    usable_postgres,
)

from ..conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    try:
        binaries = usable_postgres()
    except NoPostgresError as exc:
        pytest.skip(str(exc))
    cluster = PostgresCluster(binaries)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}")
    with empty_database(cluster.url()) as url:
        yield url
    cluster.stop()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, database_url: str
) -> Iterator[list[RunningServer]]:
    started: list[RunningServer] = []
    try:
        for name in ("a", "b"):  # separate data dirs: only PostgreSQL is shared
            args = ["--model", str(model_path), "--threads", "1", "--parallel", "2"]
            tmp = tmp_path_factory.mktemp(f"replica-{name}")
            env = {"GEMMA_MEMORY_URL": database_url}
            started.append(start_server(tmp, *args, "--ctx-size", "4096", env=env))
        yield started
    finally:
        for server in started:
            stop_server(server)


def _chat(server: RunningServer, conversation: str, text: str) -> dict[str, object]:
    r = httpx.post(
        server.url + "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": text}],
            "conversation_id": conversation,
            "max_tokens": 12,
            "temperature": 0,
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_conversation_started_on_one_replica_continues_on_the_other(
    replicas: list[RunningServer],
) -> None:
    a, b = replicas
    question = "What is my name?"
    first = _chat(a, "shared-1", "My name is Zorblax and I keep bees on the roof.")
    second = _chat(b, "shared-1", question)
    fresh = _chat(b, "shared-2", question)
    usage = [r["usage"] for r in (first, second, fresh)]
    first_turn = usage[0]["prompt_tokens"] + usage[0]["completion_tokens"]  # type: ignore[index]
    # Replica b put replica a's turn (question and answer) before the new question...
    assert usage[1]["prompt_tokens"] >= usage[2]["prompt_tokens"] + first_turn - 4  # type: ignore[index]
    # ...and both turns are now stored: a third turn on a sees all of them.
    third = _chat(a, "shared-1", "Thanks.")
    assert third["usage"]["prompt_tokens"] > usage[1]["prompt_tokens"]  # type: ignore[index]


def test_a_stored_response_made_on_one_replica_is_continued_on_the_other(
    replicas: list[RunningServer],
) -> None:
    a, b = replicas
    first = httpx.post(
        a.url + "/v1/responses",
        json={"input": "My name is Zorblax.", "max_output_tokens": 12, "temperature": 0},
        timeout=120,
    )
    assert first.status_code == 200, first.text
    response_id = first.json()["id"]
    fetched = httpx.get(f"{b.url}/v1/responses/{response_id}", timeout=30)
    assert fetched.status_code == 200 and fetched.json()["id"] == response_id
    ask = {"input": "What is my name?", "max_output_tokens": 12, "temperature": 0}
    follow = httpx.post(
        b.url + "/v1/responses", json={**ask, "previous_response_id": response_id}, timeout=120
    )
    alone = httpx.post(b.url + "/v1/responses", json=ask, timeout=120)
    assert follow.status_code == 200, follow.text
    # b answered with a's exchange before the question.
    assert follow.json()["usage"]["input_tokens"] > alone.json()["usage"]["input_tokens"] + 5
