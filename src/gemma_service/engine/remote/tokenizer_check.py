"""Start-up check that the front's tokenizer (the GGUF of GEMMA_MODEL_PATH) is the upstreams':
prompts travel as token ids, so a different vocabulary would make every answer nonsense."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import httpx

from gemma_service.engine.remote.dialect import UpstreamKind
from gemma_service.errors import ModelFileError

PROBE = "Gemma tokenizer check: <start_of_turn>user\nHéllo, 世界! 12345<end_of_turn>\n"


def tokenize_body(kind: UpstreamKind, text: str) -> dict[str, Any] | None:
    """The body of the upstream's ``POST /tokenize`` (None: this kind has no such route)."""
    if kind in ("llama-server", "gemma-service"):
        return {"content": text, "add_special": False, "parse_special": True}
    if kind == "vllm":
        return {"prompt": text, "add_special_tokens": False}
    return None


async def check_tokenizer(
    client: httpx.AsyncClient,
    url: str,
    kind: UpstreamKind,
    tokenize: Callable[[str], list[int]],
    vocabulary: str,
) -> bool:
    """Compare our token ids for a probe text with the upstream's; raise on a mismatch.
    False when the upstream could not say (unreachable, no tokenize route)."""
    body = tokenize_body(kind, PROBE)
    if body is None:
        return False
    theirs: Any = None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = await client.post(url + "/tokenize", json=body, timeout=10.0)
        if response.status_code == 200:
            theirs = response.json().get("tokens")
    if not isinstance(theirs, list):
        return False
    ids = [t if isinstance(t, int) else t.get("id") for t in theirs]
    ours = tokenize(PROBE)
    if ids != ours:
        raise ModelFileError(
            f"the tokenizer of {vocabulary} (GEMMA_MODEL_PATH) is not the one {url} serves "
            f"with: a probe text is {len(ours)} tokens here and {len(ids)} there. Point "
            "GEMMA_MODEL_PATH at a GGUF of the served model's family."
        )
    return True
