"""An upstream killed under load behind the remote engine: streams running on it end with a
clear error, requests not yet started succeed elsewhere, and it is ejected and readmitted.

Its own module, with its own fleet: the shared fleet of test_remote_engine.py is stopped by then,
so the two do not compete for the CPU."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from ..conftest import RunningServer, stop_server
from .conftest import (
    IN_FLIGHT,
    NO_END,
    Fleet,
    openai_client,
    start_fleet,
    start_front,
    stop_fleet,
    upstream_series,
)

pytestmark = pytest.mark.integration


def test_a_killed_upstream_under_load(tmp_path: Path, model_path: Path) -> None:
    # Six slots each: every stream starts at once wherever affinity puts it (the front spills to
    # the other upstream past 4 more in flight, so each upstream gets at least one).
    fleet = start_fleet(model_path, tmp_path, parallel=6)
    front = start_front(tmp_path, model_path, fleet)
    try:
        _killed_upstream_scenario(front, fleet)
    finally:
        stop_server(front)
        stop_fleet(fleet)


def _killed_upstream_scenario(front: RunningServer, fleet: Fleet) -> None:
    client = openai_client(front)
    first_token = threading.Barrier(7)
    outcomes: list[str] = []

    def long_stream(n: int) -> str:
        stream = client.chat.completions.create(
            model="gemma",
            messages=[{"role": "user", "content": f"Story number {n}: tell it slowly."}],
            max_tokens=160,
            temperature=0,
            stream=True,
            logit_bias=NO_END,  # type: ignore[arg-type]
        )
        waited = False
        try:
            for chunk in stream:
                if not waited and chunk.choices and chunk.choices[0].delta.content:
                    waited = True
                    first_token.wait(timeout=120)
        except openai.APIError as exc:
            return f"error: {exc.message}"
        return "complete"

    with ThreadPoolExecutor(6) as pool:
        streams = [pool.submit(long_stream, n) for n in range(6)]
        first_token.wait(timeout=120)  # every stream is running
        in_flight = upstream_series(front, IN_FLIGHT)
        assert all(v > 0 for v in in_flight.values()), in_flight  # spread over both
        victim = fleet.upstreams[0]
        victim.kill()
        # Requests that start now must all succeed, on the survivor.
        answers = list(
            pool.map(
                lambda n: client.completions.create(
                    model="gemma", prompt=f"Fact {n}:", max_tokens=4, temperature=0
                ),
                range(8),
            )
        )
        outcomes = [s.result(timeout=300) for s in streams]
    assert all(a.choices[0].text is not None for a in answers)
    killed = int(in_flight[victim.url])
    errors = [o for o in outcomes if o.startswith("error")]
    assert len(errors) == killed, outcomes  # the streams on the dead upstream ended...
    assert all(victim.url in e and "incomplete" in e for e in errors), errors  # ...saying why
    assert outcomes.count("complete") == 6 - killed  # the others ran to their end
    assert upstream_series(front, "gemma_upstream_healthy")[victim.url] == 0
    assert upstream_series(front, "gemma_upstream_ejections_total")[victim.url] >= 1

    victim.start()  # back on its port: readmitted by the health checks
    deadline = time.monotonic() + 60
    while upstream_series(front, "gemma_upstream_healthy")[victim.url] != 1:
        assert time.monotonic() < deadline, "the upstream was not readmitted"
        time.sleep(0.3)
    before = upstream_series(front, "gemma_upstream_requests_total")[victim.url]
    for n in range(8):  # different prompts: some prefer the readmitted upstream again
        client.completions.create(model="gemma", prompt=f"Other {n}:", max_tokens=2)
    assert upstream_series(front, "gemma_upstream_requests_total")[victim.url] > before
