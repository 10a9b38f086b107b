"""Images and audio through the real app and engine loop over the fake backend's projector."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from gemma_service.engine.fake_backend import MEDIA_TOKENS, FakeBackend

from .conftest import MakeClient


def png(colour: tuple[int, int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def chat(url: str, text: str = "What is it?") -> dict[str, Any]:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 40}


def test_media_positions_are_counted_and_a_repeated_image_is_cached(
    make_client: MakeClient,
) -> None:
    backend = FakeBackend(modalities=("text", "image"))
    client = make_client(backend)
    assert client.get("/v1/models").json()["data"][0]["modalities"] == ["text", "image"]
    red = client.post("/v1/chat/completions", json=chat(png((255, 0, 0)))).json()
    text_only = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is it?"}], "max_tokens": 40},
    ).json()
    # The picture adds its positions, the two markers around them and the line break after it.
    added = red["usage"]["prompt_tokens"] - text_only["usage"]["prompt_tokens"]
    assert added == MEDIA_TOKENS + 2 + 1
    blue = client.post("/v1/chat/completions", json=chat(png((0, 0, 255)))).json()
    assert blue["choices"][0]["message"]["content"] != red["choices"][0]["message"]["content"]
    again = client.post("/v1/chat/completions", json=chat(png((255, 0, 0)), "And now?")).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > MEDIA_TOKENS
    decoded = backend.media_decoded
    client.post("/v1/chat/completions", json=chat(png((255, 0, 0))))
    assert backend.media_decoded == decoded  # the same request again: all from the cache


def test_a_model_without_ears_refuses_audio_and_a_text_model_images(
    make_client: MakeClient,
) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    seeing = make_client(FakeBackend(modalities=("text", "image")))
    r = seeing.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": [audio]}]}
    )
    assert r.status_code == 400 and "cannot take audio" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "messages[0].content[0]"
    blind = make_client()
    r = blind.post("/v1/chat/completions", json=chat(png((1, 2, 3))))
    assert r.status_code == 400 and "takes text only" in r.json()["error"]["message"]


def test_native_images_and_limits(make_client: MakeClient) -> None:
    client = make_client(FakeBackend(modalities=("text", "image")), max_images_per_request=1)
    image = png((9, 9, 9)).partition(",")[2]
    ok = client.post(
        "/chat", json={"messages": [{"role": "user", "content": "hi", "images": [image]}]}
    )
    assert ok.status_code == 200, ok.text
    two = client.post(
        "/chat", json={"messages": [{"role": "user", "content": "hi", "images": [image, image]}]}
    )
    assert two.status_code == 413 and two.json()["error"]["code"] == "too_many_images"
