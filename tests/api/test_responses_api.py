"""POST /v1/responses over the fake engine: shapes the openai SDK reads, the event stream,
stored responses (continuation, GET, DELETE, owners, restarts) and errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from openai.types.responses import Response

from .conftest import MakeClient, ScriptedModel, as_owner

RESPONSES = "/v1/responses"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def events(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    with client.stream("POST", RESPONSES, json={**body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                payload = json.loads(line.removeprefix("data: "))
                assert payload["type"] == name
                out.append(payload)
    return out


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


def test_a_response_has_the_shape_the_sdk_reads(client: TestClient) -> None:
    r = client.post(RESPONSES, json={"input": "Hello", "instructions": "Be brief."})
    assert r.status_code == 200, r.text
    response = Response.model_validate(r.json())
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text.startswith("Hello from gemma-fake")
    assert response.instructions == "Be brief."
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_max_output_tokens_makes_it_incomplete(client: TestClient) -> None:
    body = client.post(RESPONSES, json={"input": "Hello", "max_output_tokens": 5}).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["usage"]["output_tokens"] == 5


def test_streamed_events_equal_the_whole_response_for_one_seed(client: TestClient) -> None:
    request = {"input": "Same question", "seed": 7, "temperature": 0.7}
    whole = client.post(RESPONSES, json=request).json()
    streamed = events(client, request)
    assert [e["type"] for e in streamed[:2]] == ["response.created", "response.in_progress"]
    assert streamed[-1]["type"] == "response.completed"
    deltas = [e["delta"] for e in streamed if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == output_text(whole) == output_text(streamed[-1]["response"])
    assert [e["sequence_number"] for e in streamed] == list(range(len(streamed)))
    assert streamed[-1]["response"]["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


def test_a_function_call_and_its_output_continue_a_stored_response(
    client: TestClient, scripted: ScriptedModel
) -> None:
    scripted.say(CALL_TEXT)
    first = client.post(RESPONSES, json={"input": "Weather in Paris?", "tools": [WEATHER]}).json()
    [call] = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    scripted.say("It is sunny in Paris.")
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 24C"}
    second = client.post(
        RESPONSES,
        json={"previous_response_id": first["id"], "input": [output], "tools": [WEATHER]},
    ).json()
    assert output_text(second) == "It is sunny in Paris."
    assert second["previous_response_id"] == first["id"]
    prompt = scripted.prompts[-1]
    assert "Weather in Paris?" in prompt  # the first turn, from the store
    assert '"city": "Paris"' in prompt and "sunny, 24C" in prompt


def test_a_streamed_function_call_has_argument_deltas(
    client: TestClient, scripted: ScriptedModel
) -> None:
    scripted.say(CALL_TEXT)
    streamed = events(client, {"input": "Weather?", "tools": [WEATHER], "tool_choice": "required"})
    added = [e for e in streamed if e["type"] == "response.output_item.added"]
    assert [e["item"]["type"] for e in added] == ["function_call"]
    deltas = [e["delta"] for e in streamed if e["type"] == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"city": "Paris"}
    [call] = streamed[-1]["response"]["output"]
    assert call["call_id"] == added[0]["item"]["call_id"]


def test_stored_responses_can_be_read_listed_and_deleted(client: TestClient) -> None:
    made = client.post(RESPONSES, json={"input": "Remember me"}).json()
    path = f"{RESPONSES}/{made['id']}"
    assert client.get(path).json() == made
    items = client.get(f"{path}/input_items").json()
    assert items["data"][0]["content"][0]["text"] == "Remember me"
    assert items["first_id"] == items["data"][0]["id"]
    assert client.delete(path).json() == {"id": made["id"], "object": "response", "deleted": True}
    gone = client.get(path)
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "response_id"
    assert client.delete(path).status_code == 404


def test_store_false_keeps_nothing(client: TestClient) -> None:
    made = client.post(RESPONSES, json={"input": "Forget me", "store": False}).json()
    assert made["store"] is False
    assert client.get(f"{RESPONSES}/{made['id']}").status_code == 404
    follow = client.post(RESPONSES, json={"input": "and?", "previous_response_id": made["id"]})
    assert follow.status_code == 404 and follow.json()["error"]["param"] == "previous_response_id"


def test_a_streamed_response_is_stored_before_it_completes(client: TestClient) -> None:
    body = {"input": "Stream and store", "stream": True}
    with client.stream("POST", RESPONSES, json=body) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and '"response.completed"' in line:
                final = json.loads(line.removeprefix("data: "))["response"]
                # Read while the stream is still open: a client may continue at once.
                stored = client.get(f"{RESPONSES}/{final['id']}")
                assert stored.status_code == 200 and stored.json()["output"] == final["output"]
                return
    raise AssertionError("no response.completed event")


def test_another_owners_response_is_404(client: TestClient) -> None:
    as_owner(client)
    alice, bob = {"X-Test-Owner": "alice"}, {"X-Test-Owner": "bob"}
    made = client.post(RESPONSES, json={"input": "Alice's secret"}, headers=alice).json()
    path = f"{RESPONSES}/{made['id']}"
    assert client.get(path, headers=bob).status_code == 404
    assert client.get(f"{path}/input_items", headers=bob).status_code == 404
    follow = {"input": "go on", "previous_response_id": made["id"]}
    assert client.post(RESPONSES, json=follow, headers=bob).status_code == 404
    assert client.delete(path, headers=bob).status_code == 404
    assert client.get(path, headers=alice).status_code == 200  # untouched by bob's delete


def test_stored_responses_survive_a_restart(make_client: MakeClient) -> None:
    made = make_client().post(RESPONSES, json={"input": "Durable"}).json()
    restarted = make_client()  # a new app on the same data directory
    assert restarted.get(f"{RESPONSES}/{made['id']}").json()["output"] == made["output"]


def test_text_format_json_schema_reaches_the_engine_as_a_grammar(
    make_client: MakeClient,
) -> None:
    from .test_structured_api import RecordingBackend

    backend = RecordingBackend()
    client = make_client(backend)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    fmt = {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
    body = client.post(RESPONSES, json={"input": "ok?", "text": {"format": fmt}}).json()
    assert body["text"]["format"]["name"] == "answer"
    assert backend.sampling[-1].grammar is not None and "ok" in backend.sampling[-1].grammar


def error(r: Any, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def test_bad_input_is_a_400_naming_the_item(client: TestClient) -> None:
    def post(body: dict[str, Any]) -> Any:
        return client.post(RESPONSES, json=body)

    assert error(post({"input": [{"type": "bogus"}]}))["param"] == "input[0].type"
    assert error(post({"input": [{"role": "robot", "content": "x"}]}))["param"] == "input[0].role"
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{nope"}
    assert error(post({"input": [call]}))["param"] == "input[0].arguments"
    no_call = {"type": "function_call_output", "call_id": "c9", "output": "x"}
    assert "does not match" in error(post({"input": [no_call]}))["message"]
    assert error(post({"input": ""}))["param"] == "input"
    assert (
        error(post({"input": "x", "tools": [{"type": "web_search"}]}))["param"] == "tools[0].type"
    )
    bad_name = {"type": "function", "name": "no spaces allowed"}
    assert error(post({"input": "x", "tools": [bad_name]}))["param"] == "tools[0].name"
    choice = {"type": "function", "name": "missing"}
    assert "not in tools" in error(post({"input": "x", "tool_choice": choice}))["message"]
    assert error(post({"input": "x", "background": True}))["param"] == "background"
    assert error(post({"input": "x", "max_output_tokens": 10**9}))["param"] == "max_output_tokens"
    assert error(post({"input": "x", "temperature": 3}))["param"] == "temperature"
    image = {"type": "input_image", "image_url": "ftp://x/y.png"}
    message = {"role": "user", "content": [image]}
    assert error(post({"input": [message]}))["param"] == "input[0].content[0].image_url"
    ok_image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    refused = error(post({"input": [{"role": "user", "content": [ok_image]}]}))
    assert refused["code"] == "unsupported_content"  # a text model, as in chat completions
