"""The tiny generated models (tests/tiny_models) as fixtures."""

from tests.tiny_models.fixtures import (  # noqa: F401
    tiny_gemma3_vision,
    tiny_gemma4_multimodal,
    tiny_gemma4_text,
)
