"""The media parts of a chat (images, audio) made ready for the engine, under limits.

``MediaLoader.load`` refuses what the model cannot read (a text-only model keeps its clear 400),
enforces the per-request limits (413), loads each image through the injected ``ImageSource``
(data URLs, or http(s) through the API's SSRF-safe fetcher), decodes it to RGB pixels and hashes
its content; audio is checked and passed on encoded, for the projector to decode at its sample
rate. Each media part is replaced in its message by a marker carrying a per-request nonce; the
rendered prompt is later split at the markers (``split_at_markers``), so a user who types a
marker's text cannot place or forge media, and media dropped with old turns are simply not sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import re
import secrets
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from gemma_service.chat.messages import AudioPart, ChatMessage, ImagePart, MediaPart, TextPart
from gemma_service.engine.protocol import MediaInput, Modality
from gemma_service.errors import InvalidRequestError, PayloadTooLargeError, ServiceError

# Loads an image URL (data: or http(s)) and returns its bytes; raises ServiceError (400/413).
ImageSource = Callable[[str], Awaitable[bytes]]

AUDIO_FORMATS = ("wav", "mp3", "flac")
_MARKER = re.compile(r"<\|media:([0-9a-f]{16}):(\d+)\|>")


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What one request may carry."""

    max_images: int = 8
    image_max_bytes: int = 5 * 1024 * 1024
    image_max_pixels: int = 16_000_000
    audio_max_bytes: int = 10 * 1024 * 1024
    audio_max_seconds: float = 30.0


@dataclass(slots=True)
class LoadedMedia:
    """A chat's messages with markers where its media were, and the media in that order."""

    messages: list[ChatMessage]
    media: list[MediaInput]
    nonce: str


class MediaLoader:
    """Turns the media parts of a chat into ``MediaInput``s."""

    def __init__(self, source: ImageSource | None = None, limits: MediaLimits | None = None):
        self._source = source
        self.limits = limits or MediaLimits()

    async def load(
        self, messages: Sequence[ChatMessage], modalities: Sequence[Modality]
    ) -> LoadedMedia:
        """Check, load and decode every media part; a refusal names the part."""
        parts = [p for m in messages for p in m.media]
        nonce = secrets.token_hex(8)
        if not parts:
            return LoadedMedia(list(messages), [], nonce)
        self._check_admissible(parts, modalities)
        media = await asyncio.gather(*(self._load_part(p) for p in parts))
        out: list[ChatMessage] = []
        index = 0
        for message in messages:
            content: list[TextPart | ImagePart | AudioPart] = []
            for part in message.content:
                if isinstance(part, TextPart):
                    content.append(part)
                else:
                    content.append(TextPart(media_marker(nonce, index)))
                    index += 1
            out.append(replace(message, content=content))
        return LoadedMedia(out, list(media), nonce)

    def _check_admissible(self, parts: list[MediaPart], modalities: Sequence[Modality]) -> None:
        for part in parts:
            kind: Modality = "image" if isinstance(part, ImagePart) else "audio"
            if kind not in modalities:
                what = "images" if kind == "image" else "audio"
                only = "text only" if modalities == ("text",) else ", ".join(modalities)
                raise InvalidRequestError(
                    f"this model takes {only}; it cannot take {what}",
                    param=part.param,
                    code="unsupported_content",
                )
        images = [p for p in parts if isinstance(p, ImagePart)]
        if len(images) > self.limits.max_images:
            raise PayloadTooLargeError(
                f"a request may carry at most {self.limits.max_images} images, "
                f"this one has {len(images)}",
                param=images[self.limits.max_images].param,
                code="too_many_images",
            )

    async def _load_part(self, part: MediaPart) -> MediaInput:
        if isinstance(part, AudioPart):
            return audio_input(part, self.limits)
        if self._source is None:
            raise InvalidRequestError("images cannot be loaded here", param=part.param)
        try:
            data = await self._source(part.url)
        except ServiceError as exc:  # the loader's own words, naming this part
            raise type(exc)(exc.message, param=part.param, code=exc.code) from None
        if len(data) > self.limits.image_max_bytes:
            raise PayloadTooLargeError(
                f"the image is larger than {self.limits.image_max_bytes} bytes",
                param=part.param,
                code="image_too_large",
            )
        return await asyncio.to_thread(decode_image, data, part.param, self.limits)


def media_marker(nonce: str, index: int) -> str:
    """The text standing in a message for media item ``index`` of the request ``nonce``."""
    return f"<|media:{nonce}:{index}|>"


def split_at_markers(text: str, nonce: str) -> list[str | int]:
    """``text`` as pieces of text and media indexes (markers of other requests, e.g. replayed
    from a stored conversation, become plain '[media]')."""
    pieces: list[str | int] = []
    last = 0
    for match in _MARKER.finditer(text):
        pieces.append(text[last : match.start()])
        if match.group(1) == nonce:
            pieces.append(int(match.group(2)))
        else:
            pieces.append("[media]")
        last = match.end()
    pieces.append(text[last:])
    return [p for p in pieces if p != ""]


def decode_image(data: bytes, param: str, limits: MediaLimits) -> MediaInput:
    """Image bytes (PNG, JPEG, WebP, GIF, ...) → RGB pixels, size checked before decoding."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.image_max_pixels:
                raise PayloadTooLargeError(
                    f"the image is {width}x{height} pixels; at most "
                    f"{limits.image_max_pixels} pixels are taken",
                    param=param,
                    code="image_too_large",
                )
            pixels = image.convert("RGB").tobytes()
    except ServiceError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidRequestError(
            f"the image could not be decoded ({type(exc).__name__}): corrupt or not an image",
            param=param,
            code="invalid_image",
        ) from None
    digest = hashlib.sha256(b"image" + struct.pack("<II", width, height) + pixels).hexdigest()
    return MediaInput("image", pixels, digest, param, width=width, height=height)


def audio_input(part: AudioPart, limits: MediaLimits) -> MediaInput:
    """An audio part, checked (format, base64, size); the projector decodes it."""
    fmt = part.format.lower()
    if fmt not in AUDIO_FORMATS:
        raise InvalidRequestError(
            f"audio format {part.format!r} is not supported (use {', '.join(AUDIO_FORMATS)})",
            param=part.param,
            code="invalid_audio",
        )
    if len(part.data) * 3 // 4 > limits.audio_max_bytes + 3:
        raise PayloadTooLargeError(
            f"the audio is larger than {limits.audio_max_bytes} bytes",
            param=part.param,
            code="audio_too_large",
        )
    try:
        data = base64.b64decode(part.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            "the audio data is not valid base64", param=part.param, code="invalid_audio"
        ) from None
    if not data:
        raise InvalidRequestError("the audio is empty", param=part.param, code="invalid_audio")
    digest = hashlib.sha256(b"audio" + data).hexdigest()
    return MediaInput("audio", data, digest, part.param, max_seconds=limits.audio_max_seconds)
