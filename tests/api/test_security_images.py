"""Image parts: a text-only model says it cannot take images, without fetching anything."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


def with_image(url: str) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return {"messages": [{"role": "user", "content": parts}]}


@pytest.mark.parametrize(
    "url", [f"data:image/png;base64,{PNG}", "https://images.example.com/cat.png"]
)
def test_a_text_model_refuses_images(client: TestClient, url: str) -> None:
    r = client.post("/v1/chat/completions", json=with_image(url))
    assert r.status_code == 400
    err = r.json()["error"]
    assert "cannot take images" in err["message"] and err["param"] == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("data:image/png;base64,!!!notbase64", "not valid base64"),
        ("data:text/html;base64,PGI+", "must hold an image"),
        ("file:///etc/passwd", "data: URL or an http(s) URL"),
    ],
)
def test_malformed_image_references_are_named(client: TestClient, url: str, text: str) -> None:
    r = client.post("/v1/chat/completions", json=with_image(url))
    assert r.status_code == 400
    err = r.json()["error"]
    assert text in err["message"] and err["param"] == "messages[0].content[1].image_url.url"
