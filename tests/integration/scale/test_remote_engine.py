"""gemma-service as the front of two real upstream servers (GEMMA_ENGINE=remote), driven with
the openai SDK: streaming, tools, memory, affinity, and an upstream killed under load."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from ..conftest import RunningServer, stop_server
from .conftest import Fleet, start_fleet, start_front, stop_fleet

pytestmark = pytest.mark.integration

# Gemma's end-of-generation tokens (<eos>, <end_of_turn>), banned so a stream runs its length.
NO_END = {"1": -100.0, "106": -100.0}
IN_FLIGHT = "gemma_upstream_in_flight"


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


def _upstream_series(server: RunningServer, name: str) -> dict[str, float]:
    """One per-upstream series of /metrics, by upstream URL."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = rf'^{name}{{upstream="([^"]+)"}} ([0-9.e+-]+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


def test_streaming_through_the_front_matches_the_upstream(
    front: RunningServer, fleet: Fleet
) -> None:
    prompt = "The three primary colours are"
    stream = _client(front).completions.create(
        model="gemma", prompt=prompt, max_tokens=16, temperature=0, stream=True
    )
    pieces = [chunk.choices[0].text for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) > 1  # tokens arrived as they came, not in one piece
    direct = httpx.post(
        fleet.upstreams[0].url + "/v1/completions",
        json={"prompt": prompt, "max_tokens": 16, "temperature": 0},
        timeout=60,
    ).json()
    assert "".join(pieces) == direct["choices"][0]["text"]  # the upstream's own greedy answer


def test_chat_tools_and_json_schema_go_through_as_grammars(front: RunningServer) -> None:
    client = _client(front)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    reply = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        max_tokens=60,
        temperature=0,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in calls[0].function.arguments  # type: ignore[union-attr]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    person = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Describe Ada, 36, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        max_tokens=60,
        temperature=0,
    )
    body = json.loads(person.choices[0].message.content or "")
    assert isinstance(body["name"], str) and isinstance(body["age"], int)


def test_memory_is_retrieved_here_and_sent_to_the_upstream(front: RunningServer) -> None:
    fact = "Sarah: the launch deadline slips to March 14 because QA found bugs."
    r = httpx.post(front.url + "/v1/memories", json={"text": fact, "speaker": "Sarah"}, timeout=60)
    assert r.status_code == 200, r.text
    question = [{"role": "user", "content": "What did Sarah say about the deadline?"}]
    plain = httpx.post(
        front.url + "/v1/chat/completions",
        json={"messages": question, "max_tokens": 8, "temperature": 0},
        timeout=120,
    ).json()
    with_rag = httpx.post(
        front.url + "/v1/chat/completions",
        json={"messages": question, "max_tokens": 8, "temperature": 0, "use_rag": True},
        timeout=120,
    ).json()
    assert with_rag["sources"][0]["text"] == fact
    # The upstream counted the retrieved memory in the prompt it was sent.
    assert with_rag["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 10


def test_a_conversation_stays_on_one_upstream_and_hits_its_prefix_cache(
    front: RunningServer,
) -> None:
    client = _client(front)
    opening = "Ada Lovelace wrote the first published program, for the Analytical Engine. " * 8
    before = _upstream_series(front, "gemma_upstream_requests_total")
    for n in range(4):
        conversation = f"conversation-{n}-{time.time_ns()}"
        first = client.chat.completions.create(
            model="gemma",
            messages=[{"role": "user", "content": opening + "Who wrote it?"}],
            max_tokens=8,
            temperature=0,
            extra_body={"conversation_id": conversation},
        )
        second = client.chat.completions.create(
            model="gemma",
            messages=[{"role": "user", "content": "And for which machine?"}],
            max_tokens=8,
            temperature=0,
            extra_body={"conversation_id": conversation},
        )
        assert first.usage is not None and second.usage is not None
        details = second.usage.prompt_tokens_details
        assert second.usage.prompt_tokens > first.usage.prompt_tokens  # history was sent
        # The second turn's prompt starts with the first's, cached where the first ran.
        assert details is not None and (details.cached_tokens or 0) >= first.usage.prompt_tokens - 8
    after = _upstream_series(front, "gemma_upstream_requests_total")
    assert sum(after.values()) - sum(before.values()) == 8


def _upstream_busy(fleet: Fleet) -> int:
    """Sequences the upstreams are generating right now, as they report it themselves."""
    busy = 0
    for upstream in fleet.upstreams:
        if fleet.kind == "llama-server":
            slots = httpx.get(upstream.url + "/slots", timeout=10).json()
            busy += sum(1 for slot in slots if slot.get("is_processing"))
        else:
            busy += httpx.get(upstream.url + "/healthz", timeout=10).json()["running"]
    return busy


def test_a_client_that_goes_away_stops_the_upstream_generation(
    front: RunningServer, fleet: Fleet
) -> None:
    with httpx.stream(
        "POST",
        front.url + "/v1/completions",
        json={"prompt": "Once", "max_tokens": 2000, "stream": True, "logit_bias": NO_END},
        timeout=60,
    ) as response:
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data:"):
                break
        assert _upstream_busy(fleet) == 1  # generating for us
    deadline = time.monotonic() + 10
    while _upstream_busy(fleet) or sum(_upstream_series(front, IN_FLIGHT).values()):
        assert time.monotonic() < deadline, "the upstream kept generating for a gone client"
        time.sleep(0.2)


def test_an_upstream_refusal_is_a_400_before_any_byte(front: RunningServer) -> None:
    # A grammar only the upstream parses: its refusal comes back as ours, in OpenAI's shape.
    r = httpx.post(
        front.url + "/v1/completions",
        json={"prompt": "hi", "max_tokens": 4, "stream": True, "grammar": "root ::= ("},
        timeout=60,
    )
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_a_killed_upstream_under_load(tmp_path: Path, model_path: Path) -> None:
    fleet = start_fleet(model_path, tmp_path, parallel=4)
    front = start_front(tmp_path, model_path, fleet)
    try:
        _killed_upstream_scenario(front, fleet)
    finally:
        stop_server(front)
        stop_fleet(fleet)


def _killed_upstream_scenario(front: RunningServer, fleet: Fleet) -> None:
    client = _client(front)
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
        in_flight = _upstream_series(front, IN_FLIGHT)
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
    assert _upstream_series(front, "gemma_upstream_healthy")[victim.url] == 0
    assert _upstream_series(front, "gemma_upstream_ejections_total")[victim.url] >= 1

    victim.start()  # back on its port: readmitted by the health checks
    deadline = time.monotonic() + 30
    while _upstream_series(front, "gemma_upstream_healthy")[victim.url] != 1:
        assert time.monotonic() < deadline, "the upstream was not readmitted"
        time.sleep(0.3)
    before = _upstream_series(front, "gemma_upstream_requests_total")[victim.url]
    for n in range(8):  # different prompts: some prefer the readmitted upstream again
        client.completions.create(model="gemma", prompt=f"Other {n}:", max_tokens=2)
    assert _upstream_series(front, "gemma_upstream_requests_total")[victim.url] > before
