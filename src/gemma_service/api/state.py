"""What the routes share (held on ``app.state``), and the dependencies that hand it out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from gemma_service.chat.service import ChatService
from gemma_service.config import ServiceSettings
from gemma_service.engine.protocol import EngineClient
from gemma_service.errors import ServiceUnavailableError
from gemma_service.gpu.residency import GpuResidency


@dataclass
class ServiceState:
    """The app's long-lived resources; created by the lifespan, never at import time."""

    settings: ServiceSettings
    engine: EngineClient
    started_at: float = field(default_factory=time.time)
    chat: ChatService | None = None
    residency: GpuResidency | None = None
    draining: bool = False
    load_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.chat is not None and not self.draining and self.load_error is None


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_chat(request: Request) -> ChatService:
    state = get_state(request)
    if state.draining:
        raise ServiceUnavailableError("the server is shutting down", retry_after_s=10)
    if state.chat is None:
        raise ServiceUnavailableError(state.load_error or "the model is still loading")
    return state.chat


StateDep = Annotated[ServiceState, Depends(get_state)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
