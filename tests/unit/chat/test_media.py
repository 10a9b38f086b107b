"""The chat layer's media loading: refusals, limits, markers (no model)."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from PIL import Image

from gemma_service.chat.media import (
    MediaLimits,
    MediaLoader,
    media_marker,
    split_at_markers,
)
from gemma_service.chat.messages import AudioPart, ChatMessage, ImagePart, TextPart
from gemma_service.errors import InvalidRequestError, PayloadTooLargeError


def png(size: int = 8, colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


async def source(url: str) -> bytes:
    return base64.b64decode(url.partition(",")[2])


def image(data: bytes, where: str = "messages[0].content[1]") -> ImagePart:
    return ImagePart("data:image/png;base64," + base64.b64encode(data).decode(), param=where)


def load(
    loader: MediaLoader, *parts: TextPart | ImagePart | AudioPart, modalities=("text", "image")
):  # type: ignore[no-untyped-def]
    return asyncio.run(loader.load([ChatMessage("user", list(parts))], modalities))


def test_media_become_markers_in_place_and_pixels_with_a_content_hash() -> None:
    loaded = load(MediaLoader(source), TextPart("look:"), image(png()), image(png()))
    content = loaded.messages[0].content
    assert [p.text for p in content if isinstance(p, TextPart)][1] == media_marker(loaded.nonce, 0)
    a, b = loaded.media
    assert (a.width, a.height, len(a.data)) == (8, 8, 8 * 8 * 3)
    assert a.content_hash == b.content_hash  # the same picture
    other = load(MediaLoader(source), image(png(colour=(0, 0, 255)))).media[0]
    assert other.content_hash != a.content_hash


def test_a_typed_marker_cannot_place_media() -> None:
    nonce = "0123456789abcdef"
    forged = media_marker("fedcba9876543210", 0)
    assert split_at_markers(f"a{media_marker(nonce, 1)}b{forged}", nonce) == [
        "a",
        1,
        "b",
        "[media]",
    ]


def test_refusals_name_the_part() -> None:
    with pytest.raises(InvalidRequestError, match="takes text only") as text_only:
        load(MediaLoader(source), image(png()), modalities=("text",))
    assert text_only.value.param == "messages[0].content[1]"
    with pytest.raises(InvalidRequestError, match="could not be decoded") as corrupt:
        load(MediaLoader(source), image(b"\x89PNG nope", "messages[0].content[2]"))
    assert corrupt.value.param == "messages[0].content[2]"
    small = MediaLoader(source, MediaLimits(max_images=1, image_max_pixels=100))
    with pytest.raises(PayloadTooLargeError, match="at most 1 images"):
        load(small, image(png()), image(png()))
    with pytest.raises(PayloadTooLargeError, match="pixels"):
        load(small, image(png(size=11)))
    with pytest.raises(InvalidRequestError, match="not supported"):
        load(MediaLoader(source), AudioPart("AAAA", "ogg"), modalities=("text", "audio"))
    with pytest.raises(PayloadTooLargeError):
        tiny = MediaLoader(source, MediaLimits(audio_max_bytes=10))
        load(tiny, AudioPart(base64.b64encode(b"x" * 100).decode(), "wav"), modalities=("audio",))
