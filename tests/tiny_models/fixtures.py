"""pytest fixtures for the tiny models. Import the ones a test folder needs into its conftest:

    from tests.tiny_models.fixtures import tiny_gemma4_text  # noqa: F401

Each is session-scoped and skips (with the reason) where the generator cannot run. A first
build prints its progress to the terminal even under pytest's output capture.
"""

from __future__ import annotations

import pytest
from tests.tiny_models.cache import (
    TinyModel,
    TinyModelUnavailable,
    missing_dependencies,
    tiny_model,
)


def _get(request: pytest.FixtureRequest, name: str) -> TinyModel:
    reason = missing_dependencies()
    if reason is not None:
        pytest.skip(reason)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        if capture is None:
            return tiny_model(name)
        with capture.global_and_fixture_disabled():
            return tiny_model(name)
    except TinyModelUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def tiny_gemma3_vision(request: pytest.FixtureRequest) -> TinyModel:
    """Tiny Gemma 3: text GGUF + SigLIP mmproj (64 px images, 16 image tokens)."""
    return _get(request, "gemma3-vision")


@pytest.fixture(scope="session")
def tiny_gemma4_multimodal(request: pytest.FixtureRequest) -> TinyModel:
    """Tiny Gemma 4: text GGUF + mmproj with vision (gemma4v) and audio (gemma4a)."""
    return _get(request, "gemma4-multimodal")


@pytest.fixture(scope="session")
def tiny_gemma4_text(request: pytest.FixtureRequest) -> TinyModel:
    """Tiny Gemma 4, text only, with the real Gemma 4 vocabulary and chat template."""
    return _get(request, "gemma4-text")
