"""`gemma-service models list|show`: the catalogue as `serve` would build it, from headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemma_service.cli import main

from .test_catalogue import model, write_gguf


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    model(tmp_path / "models" / "gemma-3-4b.gguf")
    write_gguf(
        tmp_path / "models" / "mmproj-gemma-3-4b-f16.gguf",
        {"general.architecture": "clip", "clip.has_vision_encoder": True},
    )
    model(tmp_path / "default.gguf")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], folder: Path, *args: str) -> tuple[int, str]:
    flags = ["--model", str(folder / "default.gguf"), "--models-dir", str(folder / "models")]
    code = main(["models", *args, *flags])
    return code, capsys.readouterr().out


def test_list_shows_each_model_from_its_header(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out = run(capsys, folder, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "PARAMETERS", "FAMILY", "QUANTIZATION", "SIZE", "CONTEXT", "MODALITIES"
    ]  # fmt: skip
    assert lines[1].split()[:4] == ["*", "default", "1M", "gemma3"]
    assert lines[2].split()[0] == "gemma-3-4b" and lines[2].split()[-1] == "text,image"


def test_show_prints_one_model_as_json(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    code, out = run(capsys, folder, "show", "gemma-3-4b", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["modalities"] == ["text", "image"]
    assert shown["mmproj"].endswith("mmproj-gemma-3-4b-f16.gguf")
    assert (shown["quantization"], shown["context_length"]) == ("Q4_K_M", 2048)
    assert shown["metadata"]["general.name"] == "Tiny"


def test_show_of_an_unknown_model_names_the_known_ones(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    assert main(["models", "show", "nope", "--models-dir", str(folder / "models"),
                 "--model", str(folder / "default.gguf")]) == 1  # fmt: skip
    assert "default, gemma-3-4b" in capsys.readouterr().err
