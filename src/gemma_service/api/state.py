"""What the routes share (held on ``app.state``), and the dependencies that hand it out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gemma_service.api.security.owners import OWNER_HEADER, scope_for
from gemma_service.api.security.principal import PRINCIPAL_SCOPE_KEY, Principal
from gemma_service.chat.job import Caller
from gemma_service.chat.router import ChatRouter
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import EngineClient
from gemma_service.errors import AuthenticationError, ServiceUnavailableError
from gemma_service.gpu.residency import GpuResidency
from gemma_service.memory.conversations import ConversationHistory
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.service import MemoryService
from gemma_service.memory.stored_responses import ResponseStore
from gemma_service.models.pool import ModelPool


@dataclass
class ServiceState:
    """The app's long-lived resources; created by the lifespan, never at import time."""

    settings: ServiceSettings
    models: ModelPool
    started_at: float = field(default_factory=time.time)
    chat: ChatRouter | None = None
    memory: MemoryService | None = None
    conversations: ConversationHistory | None = None
    responses: ResponseStore | None = None  # stored responses of the Responses API
    draining: bool = False
    load_error: str | None = None

    @property
    def engine(self) -> EngineClient:
        """The default model's engine (loaded once the server is ready)."""
        return self.models.engine()

    @property
    def residency(self) -> GpuResidency | None:
        """The default model's GPU placement, while it is loaded."""
        return self.models.residency()

    @property
    def ready(self) -> bool:
        return self.chat is not None and not self.draining and self.load_error is None


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_chat(request: Request) -> ChatRouter:
    state = get_state(request)
    if state.draining:
        raise ServiceUnavailableError("the server is shutting down", retry_after_s=10)
    if state.chat is None:
        raise ServiceUnavailableError(state.load_error or "the model is still loading")
    return state.chat


def get_memory(request: Request) -> MemoryService:
    state = get_state(request)
    if state.memory is None:
        raise ServiceUnavailableError(state.load_error or "the memory store is still opening")
    return state.memory


def get_responses(request: Request) -> ResponseStore:
    state = get_state(request)
    if state.responses is None:
        raise ServiceUnavailableError(state.load_error or "the response store is still opening")
    return state.responses


def get_principal(request: Request) -> Principal:
    """The caller, as the auth middleware identified it (anonymous, the local owner, on an open
    server)."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(principal, Principal):
        return principal
    # Only the public paths skip the auth middleware, and they use no caller's data: a route
    # that asks anyway gets a refusal, never a shared owner.
    raise AuthenticationError("this route was reached without the credentials check")


def get_scope(request: Request) -> OwnerScope:
    """Whose stored objects the request may use: the caller's own, or, for an admin, those of
    the owner its X-Gemma-Owner header names (403 for anyone else naming another owner)."""
    return scope_for(get_principal(request), request.headers.get(OWNER_HEADER))


def get_caller(request: Request) -> Caller:
    """Who the chat layer is working for: the principal's id (rate limits, token billing) and
    the scope of its stored objects."""
    return Caller(get_principal(request).id, get_scope(request))


StateDep = Annotated[ServiceState, Depends(get_state)]
ChatDep = Annotated[ChatRouter, Depends(get_chat)]
MemoryDep = Annotated[MemoryService, Depends(get_memory)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
CallerDep = Annotated[Caller, Depends(get_caller)]
OwnerScopeDep = Annotated[OwnerScope, Depends(get_scope)]
ResponsesDep = Annotated[ResponseStore, Depends(get_responses)]
