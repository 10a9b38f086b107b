"""The catalogue: a models folder, a TOML config, the default, and how names resolve."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gemma_service.errors import ModelFileError, NotFoundError
from gemma_service.models.catalogue import load_catalogue
from gemma_service.models.gguf_header import read_gguf_header


def write_gguf(path: Path, metadata: dict[str, object]) -> Path:
    """A header-only GGUF (v3) with string, int, bool and string-array values."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)))

    def text(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    for key, value in metadata.items():
        out += text(key)
        if isinstance(value, bool):
            out += struct.pack("<I?", 7, value)
        elif isinstance(value, int):
            out += struct.pack("<II", 4, value)
        elif isinstance(value, list):
            out += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(text(v) for v in value)
        else:
            out += struct.pack("<I", 8) + text(str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def model(path: Path, arch: str = "gemma3") -> Path:
    return write_gguf(
        path,
        {
            "general.architecture": arch,
            "general.name": "Tiny",
            "general.size_label": "1M",
            "general.file_type": 15,
            f"{arch}.context_length": 2048,
            "tokenizer.ggml.tokens": ["a", "b", "c"],
            "tokenizer.chat_template": "{{ x }}",
        },
    )


def default(tmp_path: Path) -> Path:
    return model(tmp_path / "packaged" / "gemma-3-270m.gguf")


def test_the_header_is_read_and_arrays_are_skipped(tmp_path: Path) -> None:
    header = read_gguf_header(model(tmp_path / "m.gguf"))
    assert header.architecture == "gemma3"
    assert (header.name, header.size_label, header.quantization) == ("Tiny", "1M", "Q4_K_M")
    assert header.context_length == 2048
    assert header.metadata["tokenizer.ggml.tokens"] == 3  # the array's length
    assert header.metadata["tokenizer.chat_template"] == "{{ x }}"  # read past the array


def test_a_non_gguf_file_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"bad\.gguf"):
        read_gguf_header(bad)


def test_nothing_configured_is_the_default_alone(tmp_path: Path) -> None:
    catalogue = load_catalogue(default_model=lambda: default(tmp_path))
    assert catalogue.ids == ["gemma-3-270m"]
    # With one model, any name a client sends gets it.
    assert catalogue.resolve("gpt-4o").id == "gemma-3-270m"


def test_a_models_folder_adds_every_gguf_with_its_projector(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    model(folder / "gemma-3-1b.gguf")
    model(folder / "vision" / "gemma-3-4b.gguf")
    model(folder / "vision" / "mmproj-model-f16.gguf", arch="clip")
    catalogue = load_catalogue(default_model=lambda: default(tmp_path), models_dir=folder)
    assert catalogue.ids == ["gemma-3-270m", "gemma-3-1b", "gemma-3-4b"]
    assert catalogue.default_id == "gemma-3-270m"
    assert catalogue.entries["gemma-3-4b"].mmproj == folder / "vision" / "mmproj-model-f16.gguf"
    assert catalogue.entries["gemma-3-1b"].mmproj is None


def test_an_unknown_name_among_several_is_model_not_found(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    model(folder / "gemma-3-1b.gguf")
    catalogue = load_catalogue(default_model=lambda: default(tmp_path), models_dir=folder)
    assert catalogue.resolve(None).id == "gemma-3-270m"
    with pytest.raises(NotFoundError) as caught:
        catalogue.resolve("gemma-3-27b")
    assert caught.value.code == "model_not_found"
    assert "gemma-3-270m, gemma-3-1b" in caught.value.message


def test_the_config_gives_aliases_settings_and_the_default(tmp_path: Path) -> None:
    big = model(tmp_path / "weights" / "big.gguf")
    config = tmp_path / "models.toml"
    config.write_text(
        'default = "hard"\n'
        "[models.hard]\n"
        'path = "weights/big.gguf"\n'
        'aliases = ["gemma-big", "smart"]\n'
        "context_size = 8192\n"
        "gpu_layers = -1\n"
        "pinned = true\n"
        "idle_s = 300\n"
    )
    asked: list[bool] = []

    def packaged() -> Path:
        asked.append(True)
        return default(tmp_path)

    model(tmp_path / "models" / "a-first.gguf")
    catalogue = load_catalogue(
        default_model=packaged, config_file=config, models_dir=tmp_path / "models"
    )
    assert catalogue.ids == ["hard", "a-first"]  # the default first
    assert asked == []  # the packaged model is not needed
    entry = catalogue.entries["hard"]
    assert entry.path == big.resolve()
    assert entry.overrides == {"context_size": 8192, "gpu_layers": -1}
    assert entry.pinned and entry.idle_s == 300
    assert catalogue.find("smart") is entry


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('path = "nope.gguf"', "not found"),
        ('path = "m.gguf"\ncontext = 5', "unknown keys"),
        ('path = "m.gguf"\nparallel = 0', "parallel must be an integer >= 1"),
        ('path = "m.gguf"\naliases = "x"', "aliases must be a list"),
        ("pinned = true", "needs a path"),
    ],
)
def test_a_bad_config_entry_fails_at_start_naming_it(
    tmp_path: Path, table: str, error: str
) -> None:
    model(tmp_path / "m.gguf")
    config = tmp_path / "models.toml"
    config.write_text(f"[models.x]\n{table}\n")
    with pytest.raises(ModelFileError, match=error):
        load_catalogue(default_model=lambda: default(tmp_path), config_file=config)


def test_one_name_for_two_models_is_refused(tmp_path: Path) -> None:
    model(tmp_path / "m.gguf")
    config = tmp_path / "models.toml"
    config.write_text('[models.x]\npath = "m.gguf"\naliases = ["gemma-3-270m"]\n')
    with pytest.raises(ModelFileError, match="given to two models"):
        load_catalogue(default_model=lambda: default(tmp_path), config_file=config)
