"""Images through the real server with the openai SDK, on the tiny Gemma 3 vision model."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import openai
import pytest

from ..conftest import RunningServer
from .conftest import ImageHost, client, data_url, image_message, png

pytestmark = pytest.mark.integration

GREEDY: dict[str, Any] = {"model": "tiny", "max_tokens": 8, "temperature": 0, "seed": 7}


def ask(server: RunningServer, messages: list[dict[str, Any]]) -> Any:
    return client(server).chat.completions.create(messages=messages, **GREEDY)  # type: ignore[call-overload]


def answer(server: RunningServer, url: str, text: str = "What is in this picture?") -> str:
    return str(ask(server, image_message(url, text)).choices[0].message.content)


def test_models_and_health_say_the_model_sees_images(gemma3_server: RunningServer) -> None:
    [card] = client(gemma3_server).models.list().data
    assert card.modalities == ["text", "image"]  # type: ignore[attr-defined]
    assert httpx.get(gemma3_server.url + "/healthz").json()["modalities"] == ["text", "image"]


def test_an_image_changes_the_answer_and_the_same_image_gives_the_same(
    gemma3_server: RunningServer,
) -> None:
    a, b = data_url(png(1)), data_url(png(2))
    first = answer(gemma3_server, a)
    assert answer(gemma3_server, a) == first
    assert answer(gemma3_server, b) != first
    reply = ask(gemma3_server, image_message(a))
    # 16 image positions of the tiny model, plus the text and the image markers.
    assert reply.usage.prompt_tokens > 16 + 2


def test_a_url_image_is_the_same_picture_as_its_base64(
    gemma3_server: RunningServer, image_host: ImageHost
) -> None:
    assert answer(gemma3_server, image_host.url + "/a.png") == answer(
        gemma3_server, data_url(png(1))
    )
    with pytest.raises(openai.BadRequestError) as info:
        answer(gemma3_server, image_host.url + "/missing.png")
    assert "HTTP 404" in info.value.message


def test_a_repeated_image_comes_from_the_cache(gemma3_server: RunningServer) -> None:
    picture = data_url(png(11))
    ask(gemma3_server, image_message(picture, "Describe the colours."))
    ask(gemma3_server, image_message(data_url(png(12)), "Describe the colours."))
    again = ask(gemma3_server, image_message(picture, "Is there a cat?"))
    # BOS, turn markers, the image's begin marker and its 16 positions were computed before.
    assert again.usage.prompt_tokens_details.cached_tokens >= 16 + 5


def test_eight_image_requests_mixed_with_text_requests_all_answer_right(
    gemma3_server: RunningServer,
) -> None:
    image_jobs = [image_message(data_url(png(100 + i % 4)), f"Question {i}?") for i in range(8)]
    text_jobs = [[{"role": "user", "content": f"Tell me about number {i}."}] for i in range(4)]
    jobs = image_jobs + text_jobs
    alone = [ask(gemma3_server, m).choices[0].message.content for m in jobs]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda m: ask(gemma3_server, m), jobs))
    assert [r.choices[0].message.content for r in together] == alone
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in together)


def test_bad_images_are_refused_naming_the_part(gemma3_server: RunningServer) -> None:
    corrupt = data_url(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(openai.BadRequestError) as info:
        answer(gemma3_server, corrupt)
    assert info.value.body["param"] == "messages[0].content[0]"  # type: ignore[index]
    assert "could not be decoded" in info.value.message

    with pytest.raises(openai.APIStatusError) as too_big:
        answer(gemma3_server, data_url(png(3, size=600)))  # 360,000 pixels > 300,000
    assert too_big.value.status_code == 413
    assert too_big.value.body["code"] == "image_too_large"  # type: ignore[index]

    four = image_message(data_url(png(1)))
    four[0]["content"] = [four[0]["content"][0]] * 4 + [{"type": "text", "text": "Compare."}]
    with pytest.raises(openai.APIStatusError) as too_many:
        ask(gemma3_server, four)
    assert too_many.value.status_code == 413
    assert too_many.value.body["code"] == "too_many_images"  # type: ignore[index]


def test_audio_to_a_model_without_ears_is_a_clear_400(gemma3_server: RunningServer) -> None:
    from .conftest import audio_message, wav

    with pytest.raises(openai.BadRequestError) as info:
        ask(gemma3_server, audio_message(wav(440)))
    assert "cannot take audio" in info.value.message


def test_native_chat_takes_base64_images(gemma3_server: RunningServer) -> None:
    import base64

    def native(image: bytes) -> str:
        body = {
            "messages": [
                {"role": "user", "content": "What is in this picture?",
                 "images": [base64.b64encode(image).decode()]}
            ],
            "max_tokens": 8, "temperature": 0, "seed": 7,
        }  # fmt: skip
        r = httpx.post(gemma3_server.url + "/chat", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["response"])

    assert native(png(1)) == native(png(1)) != native(png(2))
    bad = httpx.post(
        gemma3_server.url + "/chat",
        json={"messages": [{"role": "user", "content": "x", "images": ["bm90IGFuIGltYWdl"]}]},
        timeout=60,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages[0].images[0]"


def test_a_text_only_model_keeps_its_clear_400(server: RunningServer) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        answer(server, data_url(png(1)))
    assert "takes text only" in info.value.message
