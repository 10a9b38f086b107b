"""gemma-service as the front of two real upstream servers (GEMMA_ENGINE=remote), driven with
the openai SDK: streaming, tools, memory, affinity, and an upstream killed under load."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from ..conftest import RunningServer
from .conftest import IN_FLIGHT, NO_END, Fleet, openai_client, upstream_series

pytestmark = pytest.mark.integration


def test_streaming_through_the_front_matches_the_upstream(
    front: RunningServer, fleet: Fleet
) -> None:
    prompt = "The three primary colours are"
    stream = openai_client(front).completions.create(
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
    client = openai_client(front)
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
    client = openai_client(front)
    opening = "Ada Lovelace wrote the first published program, for the Analytical Engine. " * 8
    before = upstream_series(front, "gemma_upstream_requests_total")
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
    after = upstream_series(front, "gemma_upstream_requests_total")
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
    while _upstream_busy(fleet) or sum(upstream_series(front, IN_FLIGHT).values()):
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
