"""Audio (and images) through the real server with the openai SDK, on the tiny Gemma 4."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from ..conftest import RunningServer
from .conftest import audio_message, client, data_url, image_message, solid, wav, wav_header_only

pytestmark = pytest.mark.integration


def ask(server: RunningServer, messages: list[dict[str, Any]]) -> Any:
    return client(server).chat.completions.create(  # type: ignore[call-overload]
        model="tiny", messages=messages, max_tokens=8, temperature=0, seed=3
    )


def text(reply: Any) -> str:
    return str(reply.choices[0].message.content)


def test_the_model_says_it_hears_and_sees(gemma4_server: RunningServer) -> None:
    [card] = client(gemma4_server).models.list().data
    assert card.modalities == ["text", "image", "audio"]  # type: ignore[attr-defined]


def test_audio_changes_the_answer_and_the_same_audio_gives_the_same(
    gemma4_server: RunningServer,
) -> None:
    low = ask(gemma4_server, audio_message(wav(440)))
    assert text(ask(gemma4_server, audio_message(wav(440)))) == text(low)
    assert text(ask(gemma4_server, audio_message(wav(1760)))) != text(low)
    # One second of audio is 25 positions for Gemma 4's audio encoder.
    assert low.usage.prompt_tokens > 25


def test_images_on_gemma4(gemma4_server: RunningServer) -> None:
    red, blue = data_url(solid((255, 0, 0))), data_url(solid((0, 0, 255)))
    a = ask(gemma4_server, image_message(red))
    assert text(ask(gemma4_server, image_message(red))) == text(a)
    assert text(ask(gemma4_server, image_message(blue))) != text(a)
    # The tiny model's 64-pixel picture is scaled up to 81 positions (mtmd's minimum is 70).
    assert a.usage.prompt_tokens > 81


def test_bad_audio_is_refused(gemma4_server: RunningServer) -> None:
    with pytest.raises(openai.BadRequestError) as corrupt:
        ask(gemma4_server, audio_message(wav_header_only()))
    assert corrupt.value.body["param"] == "messages[0].content[0]"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as long:
        ask(gemma4_server, audio_message(wav(440, seconds=4.0)))  # the server takes 3 s
    assert long.value.status_code == 413
    assert long.value.body["code"] == "audio_too_long"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as fmt:
        ask(gemma4_server, audio_message(wav(440), fmt="ogg"))
    assert "not supported" in fmt.value.message
