"""Python client for gemma-service: sync and async, with retries, backoff and a fallback.

from gemma_service.client import GemmaClient
with GemmaClient("https://gemma-service-xyz.run.app", api_key="...") as gemma:
    print(gemma.generate("Once upon a time", max_tokens=32).text)
"""

from gemma_service.client.async_client import AsyncGemmaClient
from gemma_service.client.errors import (
    GemmaAPIError,
    GemmaClientError,
    GemmaStreamError,
    GemmaUnavailableError,
)
from gemma_service.client.fallback import FallbackRequest
from gemma_service.client.results import (
    ChatResult,
    GenerateResult,
    MemoryHit,
    Source,
    StreamEvent,
    Usage,
)
from gemma_service.client.retry import RetryPolicy
from gemma_service.client.sync_client import GemmaClient

__all__ = [
    "AsyncGemmaClient",
    "ChatResult",
    "FallbackRequest",
    "GemmaAPIError",
    "GemmaClient",
    "GemmaClientError",
    "GemmaStreamError",
    "GemmaUnavailableError",
    "GenerateResult",
    "MemoryHit",
    "RetryPolicy",
    "Source",
    "StreamEvent",
    "Usage",
]
