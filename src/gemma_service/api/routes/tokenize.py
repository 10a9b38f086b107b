"""POST /tokenize and POST /detokenize, in llama-server's shapes: token counting for clients.

``/tokenize {"content", "add_special": false, "parse_special": true, "with_pieces": false}`` →
``{"tokens": [ids]}`` (or ``[{"id", "piece"}]`` with pieces); ``/detokenize {"tokens"}`` →
``{"content"}``. The tokenizer is the served model's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gemma_service.api.state import ChatDep, StateDep
from gemma_service.errors import InvalidRequestError

router = APIRouter(tags=["tokenize"])


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str
    add_special: bool = False
    parse_special: bool = True
    with_pieces: bool = False


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tokens: list[int] = Field(max_length=1_000_000)


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, chat: ChatDep, state: StateDep) -> dict[str, Any]:
    limit = state.settings.max_message_chars
    if len(body.content) > limit:
        raise InvalidRequestError(
            f"'content' is {len(body.content)} characters; this server allows at most {limit}",
            param="content",
            code="message_too_long",
        )
    async with chat.holding(None) as service:  # the default model's vocabulary
        engine = service.engine
        ids = engine.tokenize(
            body.content, add_special=body.add_special, parse_special=body.parse_special
        )
        if not body.with_pieces:
            return {"tokens": ids}
        return {"tokens": [{"id": t, "piece": engine.detokenize([t])} for t in ids]}


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, chat: ChatDep, state: StateDep) -> dict[str, str]:
    async with chat.holding(None) as service:  # the default model's vocabulary
        n_vocab = service.model_info.n_vocab
        bad = next((t for t in body.tokens if not 0 <= t < n_vocab), None)
        if bad is not None:
            raise InvalidRequestError(
                f"token id {bad} is outside the vocabulary (size {n_vocab})", param="tokens"
            )
        return {"content": service.engine.detokenize(body.tokens)}
