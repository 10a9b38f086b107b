"""``ChatRouter``: sends each job to its model's ``ChatService``, loading the model if need be.

The request's ``model`` picks a catalogue model (404 for an unknown one); the router holds it
(a ``ModelLease``) from before ``ChatService.start`` until the run closes, so the model pool
never unloads a model under a running request. Each load of a model gets its own service (its
prompt format, context size and GPU placement are that load's).
"""

from __future__ import annotations

from collections.abc import Callable

from gemma_service.chat.hooks import RunObserver
from gemma_service.chat.job import ChatJob
from gemma_service.chat.run import ChatRun
from gemma_service.chat.service import ChatService
from gemma_service.engine.protocol import EngineClient, ModelInfo
from gemma_service.gpu.residency import GpuResidency
from gemma_service.logs import note_request_field
from gemma_service.models.pool import ModelLease, ModelPool

ServiceFactory = Callable[[EngineClient, GpuResidency | None], ChatService]


class ChatRouter:
    """``start(job)`` as ``ChatService`` has it, over every model of the pool."""

    def __init__(self, pool: ModelPool, make_service: ServiceFactory) -> None:
        self.pool = pool
        self._make_service = make_service
        self._services: dict[str, tuple[int, ChatService]] = {}

    @property
    def model_info(self) -> ModelInfo:
        """The default model (it is loaded when the server becomes ready)."""
        return self.pool.engine().model_info

    async def start(self, job: ChatJob) -> ChatRun:
        """Admit ``job`` on the model it names; every refusal is raised here."""
        lease = await self.pool.acquire(job.model)
        note_request_field("model", lease.model_id)
        try:
            return await self._service(lease).start(job, observers=[_HoldsModel(lease)])
        except BaseException:
            lease.release()
            raise

    def _service(self, lease: ModelLease) -> ChatService:
        known = self._services.get(lease.model_id)
        if known is not None and known[0] == lease.generation:
            return known[1]
        service = self._make_service(lease.engine, lease.residency)
        self._services[lease.model_id] = (lease.generation, service)
        return service


class _HoldsModel(RunObserver):
    """Gives the model back when the run is done, failed or abandoned."""

    def __init__(self, lease: ModelLease) -> None:
        self._lease = lease

    def on_close(self) -> None:
        self._lease.release()
