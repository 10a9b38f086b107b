"""What an upstream is sent and how its stream is read: one OpenAI ``/v1/completions`` body
per request, in the form each kind of upstream accepts.

Every kind takes the prompt as token ids, ``max_tokens``, ``temperature``, ``top_p``, ``seed``,
``stop``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias`` and ``logprobs`` (the
number of alternatives). Beyond the OpenAI fields:

=============== ================================ ==================================== ========
upstream        top_k / min_p / repetition       grammar (tools, json_schema)         health
=============== ================================ ==================================== ========
llama-server    ``top_k``, ``min_p``,            ``grammar`` (GBNF)                   /health
                ``repeat_penalty``
vllm (≥ 0.11)   ``top_k`` (-1: off), ``min_p``,  ``structured_outputs.grammar``       /health
                ``repetition_penalty``
sglang          ``top_k`` (-1: off), ``min_p``,  ``ebnf``                             /health
                ``repetition_penalty``
gemma-service   ``top_k``, ``min_p``,            ``grammar`` (GBNF, an extension)     /readyz
                ``repetition_penalty``
openai          OpenAI fields only               not taken: such a request is a 400   /v1/models
=============== ================================ ==================================== ========
"""

from __future__ import annotations

from typing import Any, Literal

from gemma_service.engine.protocol import GenerationRequest, TokenLogprob, TopLogprob
from gemma_service.errors import InvalidRequestError

UpstreamKind = Literal["llama-server", "vllm", "sglang", "gemma-service", "openai"]
UPSTREAM_KINDS: tuple[UpstreamKind, ...] = (
    "llama-server",
    "vllm",
    "sglang",
    "gemma-service",
    "openai",
)
HEALTH_PATHS: dict[UpstreamKind, str] = {
    "llama-server": "/health",
    "vllm": "/health",
    "sglang": "/health",
    "gemma-service": "/readyz",
    "openai": "/v1/models",
}


def completion_body(
    request: GenerationRequest, kind: UpstreamKind, model: str | None
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/completions`` streaming ``request`` from a ``kind`` upstream."""
    p = request.sampling
    body: dict[str, Any] = {
        "prompt": request.prompt_tokens,
        "max_tokens": p.max_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "presence_penalty": p.presence_penalty,
        "frequency_penalty": p.frequency_penalty,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if model:
        body["model"] = model
    if p.seed is not None:
        body["seed"] = p.seed
    if p.stop:
        body["stop"] = p.stop
    if p.logit_bias:
        body["logit_bias"] = {str(token): bias for token, bias in p.logit_bias.items()}
    if p.logprobs:
        body["logprobs"] = max(1, p.top_logprobs)
    if kind != "openai":
        body["top_k"] = p.top_k if p.top_k > 0 or kind in ("llama-server", "gemma-service") else -1
        body["min_p"] = p.min_p
        key = "repeat_penalty" if kind == "llama-server" else "repetition_penalty"
        body[key] = p.repetition_penalty
    if p.grammar is not None:
        body.update(_grammar_fields(p.grammar, kind))
    return body


def _grammar_fields(grammar: str, kind: UpstreamKind) -> dict[str, Any]:
    if kind in ("llama-server", "gemma-service"):
        return {"grammar": grammar}
    if kind == "vllm":
        return {"structured_outputs": {"grammar": grammar}}
    if kind == "sglang":
        return {"ebnf": grammar}
    raise InvalidRequestError(
        f"the upstream servers ({kind}) take no grammar, so tools and response_format "
        "json_object / json_schema are not available through them",
        param="response_format",
        code="unsupported_by_upstream",
    )


def chunk_logprobs(choice: dict[str, Any], top_n: int) -> list[TokenLogprob] | None:
    """The logprobs of one streamed completion choice, in either shape upstreams send:
    llama-server's ``{"content": [...]}`` or the legacy OpenAI completions arrays (vLLM)."""
    raw = choice.get("logprobs")
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if isinstance(content, list):
        return [_content_logprob(item, top_n) for item in content if isinstance(item, dict)]
    tokens = raw.get("tokens") or []
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    out: list[TokenLogprob] = []
    for token, value, top in zip(tokens, values, tops, strict=False):
        alternatives = sorted((top or {}).items(), key=lambda kv: -kv[1])[:top_n]
        out.append(
            TokenLogprob(
                token=str(token),
                logprob=float(value if value is not None else 0.0),
                bytes=list(str(token).encode()),
                top_logprobs=[TopLogprob(t, float(lp), list(t.encode())) for t, lp in alternatives],
            )
        )
    return out


def _content_logprob(item: dict[str, Any], top_n: int) -> TokenLogprob:
    token = str(item.get("token", ""))
    tops = item.get("top_logprobs") or []
    return TokenLogprob(
        token=token,
        logprob=float(item.get("logprob", 0.0)),
        bytes=list(item.get("bytes") or token.encode()),
        top_logprobs=[
            TopLogprob(
                str(t.get("token", "")),
                float(t.get("logprob", 0.0)),
                list(t.get("bytes") or str(t.get("token", "")).encode()),
            )
            for t in tops[:top_n]
            if isinstance(t, dict)
        ],
    )


def cached_tokens(usage: dict[str, Any]) -> int:
    """Prompt tokens the upstream served from its prefix cache (0 when it does not say)."""
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        return int(details["cached_tokens"])
    return 0
