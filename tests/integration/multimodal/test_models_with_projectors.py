"""A models folder where one model has a projector beside it: that model reads images, the
packaged 270M (the default, no projector) refuses them, each in its own engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from tests.tiny_models import TinyModel

from ..conftest import RunningServer, start_server, stop_server
from .conftest import client, data_url, image_message, png

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, tiny_gemma3_vision: TinyModel
) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("projectors")
    folder = tmp / "models"
    folder.mkdir()
    assert tiny_gemma3_vision.mmproj_path is not None
    os.link(tiny_gemma3_vision.model_path, folder / "tiny-vision.gguf")
    os.link(tiny_gemma3_vision.mmproj_path, folder / "mmproj-tiny-vision.gguf")
    srv = start_server(
        tmp, "--model", str(model_path), "--models-dir", str(folder),
        "--ctx-size", "4096", "--threads", "1", "--parallel", "2",
        ready_timeout_s=300,
    )  # fmt: skip
    yield srv
    stop_server(srv)


def test_the_model_with_a_projector_reads_images(
    server: RunningServer, tiny_gemma3_vision: TinyModel
) -> None:
    r = client(server).chat.completions.create(
        model="tiny-vision",
        messages=image_message(data_url(png(1))),  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert r.model == "tiny-vision" and r.usage is not None and r.usage.prompt_tokens > 16
    cards = {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}
    assert cards["tiny-vision"]["modalities"] == ["text", "image"]
    assert tiny_gemma3_vision.mmproj_path is not None
    files = [tiny_gemma3_vision.model_path, tiny_gemma3_vision.mmproj_path]
    assert cards["tiny-vision"]["size_bytes"] == sum(p.stat().st_size for p in files)
    assert "mmproj-tiny-vision" not in cards  # a projector is not a model


def test_the_default_model_without_one_refuses_them(server: RunningServer) -> None:
    default = next(m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"])
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(
            model=default,
            messages=image_message(data_url(png(2))),  # type: ignore[arg-type]
            max_tokens=4,
        )
    assert caught.value.code == "unsupported_content"
