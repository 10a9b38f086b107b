"""OpenAI Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id}, its input items.

A response is stored (``store``, true by default) with its caller's owner once it completed,
before the client sees the end of it; ``previous_response_id`` continues a stored one of the
same owner. Another owner's response answers 404, exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gemma_service.api.openai_bodies import extension_fields
from gemma_service.api.responses_bodies import (
    ResponseFrame,
    new_item_id,
    output_items,
    run_status,
)
from gemma_service.api.responses_jobs import ResponsesJob, responses_job
from gemma_service.api.responses_protocol import ResponsesRequest
from gemma_service.api.responses_writer import ResponsesStreamWriter
from gemma_service.api.run_stream import stream_run, unless_disconnected
from gemma_service.api.state import CallerDep, ChatDep, ResponsesDep, StateDep
from gemma_service.chat.job import Caller
from gemma_service.errors import NotFoundError, ServiceUnavailableError
from gemma_service.memory.stored_responses import ResponseStore, StoredResponse

log = logging.getLogger(__name__)

router = APIRouter(tags=["responses"])

_ITEM_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponsesRequest,
    request: Request,
    chat: ChatDep,
    state: StateDep,
    caller: CallerDep,
    store: ResponsesDep,
) -> Response:
    previous = await _previous(store, caller, body.previous_response_id)
    parsed = responses_job(body, state.settings, caller, previous.context if previous else ())
    run = await chat.start(parsed.job)
    extras = extension_fields(run.info.context, memory_used=body.use_rag)
    frame = ResponseFrame(run.info, body, extras)
    if body.stream:
        writer = ResponsesStreamWriter(frame)

        async def save() -> None:
            try:
                await _store(store, caller, writer.final_body(), parsed, previous)
            except ServiceUnavailableError as exc:
                writer.fail(exc)

        return stream_run(run, writer, on_complete=save if body.store else None)
    [choice] = (await unless_disconnected(request, run.collect())).choices
    response = frame.body(run_status(choice.finish_reason), output_items(choice), choice.usage)
    if body.store:
        await _store(store, caller, response, parsed, previous)
    return JSONResponse(response)


@router.get("/v1/responses/{response_id}")
async def get_response(response_id: str, caller: CallerDep, store: ResponsesDep) -> Any:
    """A stored response of the caller."""
    return (await _stored(store, caller, response_id)).response


@router.delete("/v1/responses/{response_id}")
async def delete_response(
    response_id: str, caller: CallerDep, store: ResponsesDep
) -> dict[str, Any]:
    if not await asyncio.to_thread(store.delete, caller.owner, response_id):
        raise _not_found(response_id, "response_id")
    return {"id": response_id, "object": "response", "deleted": True}


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str, caller: CallerDep, store: ResponsesDep
) -> dict[str, Any]:
    """The items the response's request sent, oldest first."""
    items = (await _stored(store, caller, response_id)).input_items
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


async def _previous(
    store: ResponseStore, caller: Caller, response_id: str | None
) -> StoredResponse | None:
    if response_id is None:
        return None
    found = await asyncio.to_thread(store.get, caller.owner, response_id)
    if found is None:
        raise _not_found(response_id, "previous_response_id")
    return found


async def _stored(store: ResponseStore, caller: Caller, response_id: str) -> StoredResponse:
    found = await asyncio.to_thread(store.get, caller.owner, response_id)
    if found is None:
        raise _not_found(response_id, "response_id")
    return found


def _not_found(response_id: str, param: str) -> NotFoundError:
    return NotFoundError(f"no response with id {response_id!r}", param=param)


async def _store(
    store: ResponseStore,
    caller: Caller,
    response: dict[str, Any],
    parsed: ResponsesJob,
    previous: StoredResponse | None,
) -> None:
    """Keep ``response`` and what a continuation needs (503 when the store fails)."""
    inputs = [_with_id(item) for item in parsed.input_items]
    context = [*(previous.context if previous else []), *inputs, *response["output"]]
    stored = StoredResponse(
        response["id"], caller.owner, response["created_at"], response, inputs, context
    )
    try:
        await asyncio.to_thread(store.put, stored)
    except Exception as exc:
        log.exception("storing response %s failed", response["id"])
        raise ServiceUnavailableError(
            "the response could not be stored; retry, or send store: false"
        ) from exc


def _with_id(item: dict[str, Any]) -> dict[str, Any]:
    if isinstance(item.get("id"), str):
        return item
    prefix = _ITEM_ID_PREFIXES.get(str(item.get("type", "message")), "item")
    return {"id": new_item_id(prefix), **item}
