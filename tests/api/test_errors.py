"""Bad input gets a clear OpenAI-shaped 4xx naming the field, and the server keeps serving."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gemma_service.engine.fake_backend import FakeBackend

from .conftest import MakeClient

CHAT = "/v1/chat/completions"
OK_MESSAGES = [{"role": "user", "content": "hi"}]


def assert_error(r: Any, status: int, param: str | None = None, text: str = "") -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if param is not None:
        assert err["param"] == param
    assert text in err["message"]


@pytest.mark.parametrize(
    ("body", "param", "text"),
    [
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role", ""),
        ({"messages": OK_MESSAGES, "temperature": 5}, "temperature", "less than or equal"),
        ({"messages": OK_MESSAGES, "temperature": "hot"}, "temperature", ""),
        ({"messages": OK_MESSAGES, "top_p": -1}, "top_p", ""),
        ({"messages": OK_MESSAGES, "max_tokens": 0}, "max_tokens", ""),
        ({"messages": OK_MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"messages": OK_MESSAGES, "n": 0}, "n", ""),
        ({"messages": OK_MESSAGES, "logit_bias": {"x": 1}}, "logit_bias", "token ids"),
        ({"messages": OK_MESSAGES, "logit_bias": {"5": 500}}, "logit_bias", "[-100, 100]"),
        ({"messages": OK_MESSAGES, "presence_penalty": 3}, "presence_penalty", ""),
        ({"messages": "hello"}, "messages", ""),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str, text: str
) -> None:
    assert_error(client.post(CHAT, json=body), 400, param, text)


def test_invalid_json_is_400(client: TestClient) -> None:
    r = client.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 400, text="not valid JSON")


def test_over_the_server_caps_is_400(make_client: MakeClient) -> None:
    client = make_client(max_tokens_cap=100, max_n=2)
    assert_error(
        client.post(CHAT, json={"messages": OK_MESSAGES, "max_tokens": 101}),
        400,
        "max_tokens",
        "at most 100",
    )
    assert_error(client.post(CHAT, json={"messages": OK_MESSAGES, "n": 3}), 400, "n")


def test_image_content_on_a_text_model_is_400(client: TestClient) -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
    }
    assert_error(client.post(CHAT, json=body), 400, "messages[0].content[1]", "text only")


def test_prompt_longer_than_context_is_400_before_any_stream_byte(
    make_client: MakeClient,
) -> None:
    client = make_client(FakeBackend(n_ctx=64))
    long = [{"role": "user", "content": "x" * 200}]
    for stream in (False, True):
        r = client.post(CHAT, json={"messages": long, "stream": stream})
        assert_error(r, 400, "messages", "maximum context length is 64")
        assert r.json()["error"]["code"] == "context_length_exceeded"
        assert r.headers["content-type"].startswith("application/json")
    assert client.post(CHAT, json={"messages": OK_MESSAGES, "max_tokens": 2}).status_code == 200


def test_unknown_route_is_404_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404)


def test_server_keeps_serving_after_bad_requests(client: TestClient) -> None:
    for _ in range(3):
        client.post(CHAT, content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert client.post(CHAT, json={"messages": OK_MESSAGES}).status_code == 200
