"""``ChatRouter``: sends each job to its model's ``ChatService``, loading the model if need be.

The request's ``model`` picks a catalogue model (404 for an unknown one); the router holds it
(a ``ModelLease``) from before ``ChatService.start`` until the run closes, so the model pool
never unloads a model under a running request. Each load of a model gets its own service (its
prompt format, context size and GPU placement are that load's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

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
        # Each model's info as last loaded: it outlives an unload (for listings).
        self.known_info: dict[str, ModelInfo] = {}
        for model_id, engine in pool.loaded():
            self.known_info[model_id] = engine.model_info

    @property
    def model_info(self) -> ModelInfo:
        """The default model's info (known from start-up on, loaded or not)."""
        return self.known_info[self.pool.catalogue.default_id]

    @asynccontextmanager
    async def holding(self, model: str | None) -> AsyncIterator[ChatService]:
        """The service of the model ``model`` names, loaded and held for the block."""
        lease = await self.pool.acquire(model)
        try:
            yield self._service(lease)
        finally:
            lease.release()

    async def model_info_for(self, model: str | None) -> ModelInfo:
        """The info of the model ``model`` names (loading it if need be)."""
        async with self.holding(model) as service:
            return service.model_info

    async def count_prompt_tokens(self, job: ChatJob) -> int:
        """The prompt tokens ``job`` would take on the model it names."""
        async with self.holding(job.model) as service:
            return await service.count_prompt_tokens(job)

    async def start(self, job: ChatJob) -> ChatRun:
        """Admit ``job`` on the model it names; every refusal is raised here."""
        lease = await self.pool.acquire(job.model)
        note_request_field("model", lease.model_id)
        try:
            return await self._service(lease).start(job, observers=[_HoldsModel(lease)])
        except BaseException:
            lease.release()
            raise

    def loaded_service(self, model_id: str) -> ChatService | None:
        """The service of ``model_id`` if it is loaded now (for listings: nothing is held,
        and nothing is loaded)."""
        [status] = self.pool.status(model_id)
        if status.state != "loaded":
            return None
        return self._service_for(
            model_id, status.loads, self.pool.engine(model_id), self.pool.residency(model_id)
        )

    def _service(self, lease: ModelLease) -> ChatService:
        return self._service_for(lease.model_id, lease.generation, lease.engine, lease.residency)

    def _service_for(
        self,
        model_id: str,
        generation: int,
        engine: EngineClient,
        residency: GpuResidency | None,
    ) -> ChatService:
        """One service per load of a model (its chat format and placement are that load's)."""
        known = self._services.get(model_id)
        if known is not None and known[0] == generation:
            return known[1]
        service = self._make_service(engine, residency)
        self._services[model_id] = (generation, service)
        self.known_info[model_id] = service.model_info
        return service


class _HoldsModel(RunObserver):
    """Gives the model back when the run is done, failed or abandoned."""

    def __init__(self, lease: ModelLease) -> None:
        self._lease = lease

    def on_close(self) -> None:
        self._lease.release()
