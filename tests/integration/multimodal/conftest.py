"""Real servers over the tiny generated multimodal models, and the media tests send."""

from __future__ import annotations

import base64
import http.server
import io
import math
import struct
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai import OpenAI
from PIL import Image
from tests.tiny_models import TinyModel
from tests.tiny_models.fixtures import (  # noqa: F401
    tiny_gemma3_vision,
    tiny_gemma4_multimodal,
)

from ..conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


def start_media_server(
    tmp: Path, model: TinyModel, *args: str, env: dict[str, str] | None = None
) -> RunningServer:
    """`gemma-service serve` with the model and its projector; 1 thread (2 shared cores)."""
    assert model.mmproj_path is not None
    return start_server(
        tmp,
        "--model", str(model.model_path), "--mmproj", str(model.mmproj_path),
        "--ctx-size", "8192", "--threads", "1", "--parallel", "8", *args,
        env={"GEMMA_IMAGE_URL_ALLOWLIST": "127.0.0.1", "GEMMA_IMAGE_URL_ALLOW_PRIVATE": "true",
             **(env or {})},
        ready_timeout_s=300,  # loading under a busy shared machine
    )  # fmt: skip


@pytest.fixture(scope="module")
def gemma3_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    model: TinyModel = request.getfixturevalue("tiny_gemma3_vision")
    srv = start_media_server(
        tmp_path_factory.mktemp("gemma3"), model, "--max-images", "3",
        "--image-max-pixels", "300000",
    )  # fmt: skip
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def gemma4_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    model: TinyModel = request.getfixturevalue("tiny_gemma4_multimodal")
    srv = start_media_server(tmp_path_factory.mktemp("gemma4"), model, "--audio-max-seconds", "3")
    yield srv
    stop_server(srv)


def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def png(seed: int, size: int = 64) -> bytes:
    """A noise picture: different seeds give pictures the tiny models tell apart."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def solid(rgb: tuple[int, int, int], size: int = 64) -> bytes:
    """One colour: the tiny Gemma 4's pooled vision tower averages noise away, not colour."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def wav(freq: float, seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A sine tone as 16-bit mono WAV."""
    n = int(rate * seconds)
    samples = (0.5 * np.sin(2 * math.pi * freq * np.arange(n) / rate) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def image_message(url: str, text: str = "What is in this picture?") -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": text},
            ],
        }
    ]


def audio_message(data: bytes, fmt: str = "wav") -> list[dict[str, Any]]:
    clip = {"data": base64.b64encode(data).decode(), "format": fmt}
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": clip},
                {"type": "text", "text": "What do you hear?"},
            ],
        }
    ]


class ImageHost:
    """A local HTTP server holding pictures, for image URLs."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost({"/a.png": png(1), "/b.png": png(2)})
    yield host
    host.close()


def wav_header_only() -> bytes:
    """The start of a WAV file and nothing after: not decodable audio."""
    return b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt "
