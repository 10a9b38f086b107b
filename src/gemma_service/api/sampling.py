"""Request fields → engine SamplingParams, with the server's limits applied (the limits name
the protocol's own fields; checks against the model, such as the vocabulary, are chat's)."""

from __future__ import annotations

from gemma_service.api.openai_protocol import SamplingFields
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import SamplingParams
from gemma_service.errors import InvalidRequestError

# OpenAI's default temperature and nucleus are 1.0; those are ours too.
DEFAULT_TEMPERATURE = 1.0


def resolve_max_tokens(requested: int | None, settings: ServiceSettings, param: str) -> int:
    """An unset max_tokens is clamped to the server default, never unbounded."""
    if requested is None:
        return min(settings.default_max_tokens, settings.max_tokens_cap)
    if requested > settings.max_tokens_cap:
        raise InvalidRequestError(
            f"'{param}' is {requested}; this server allows at most {settings.max_tokens_cap}",
            param=param,
            code="invalid_value",
        )
    return requested


def check_n(n: int, settings: ServiceSettings) -> None:
    if n > settings.max_n:
        raise InvalidRequestError(
            f"'n' is {n}; this server allows at most {settings.max_n}",
            param="n",
            code="invalid_value",
        )


def sampling_from(
    req: SamplingFields,
    settings: ServiceSettings,
    *,
    max_tokens: int,
    logprobs: bool = False,
    top_logprobs: int = 0,
) -> SamplingParams:
    check_n(req.n, settings)
    bias = {int(key): value for key, value in (req.logit_bias or {}).items()}
    stop = req.stop if isinstance(req.stop, list) else ([req.stop] if req.stop else [])
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=DEFAULT_TEMPERATURE if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        top_k=max(0, req.top_k or 0),
        min_p=req.min_p or 0.0,
        repetition_penalty=req.repetition_penalty or 1.0,
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        seed=req.seed,
        stop=stop,
        logit_bias=bias,
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )
