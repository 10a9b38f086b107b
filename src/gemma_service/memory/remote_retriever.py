"""Retrieval delegated to an external service (RAG_SERVICE_URL); its failure is a warning."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gemma_service.memory.models import (
    NO_FILTERS,
    MemoryItem,
    SearchFilters,
    SearchHit,
    as_aware_utc,
)
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.retriever import RetrievalResult

logger = logging.getLogger(__name__)


class RemoteResult(BaseModel):
    """One entry of ``{results: [...]}`` in the retrieval service's answer."""

    model_config = ConfigDict(extra="ignore")

    id: str | int
    text: str
    speaker: str | None = None
    timestamp: datetime | None = None
    emotion: str | None = None
    score: float = 0.0
    # Whose memory it is, when the service says; one outside the caller's scope is dropped.
    owner: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_aware_utc(value)


class RemoteSearchResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    results: list[RemoteResult]


class RemoteRetriever:
    """Posts ``{query, top_k, owner}`` to ``{base_url}/search`` (``all_owners: true`` added for
    an admin's every-owner scope); never raises for a failing service."""

    def __init__(
        self, base_url: str, *, timeout_s: float, client: httpx.Client | None = None
    ) -> None:
        self.search_url = base_url.rstrip("/") + "/search"
        self._client = client or httpx.Client(timeout=timeout_s)
        self._timeout_s = timeout_s

    def search(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        top_k: int = 5,
        *,
        scope: OwnerScope,
    ) -> RetrievalResult:
        started = time.perf_counter()
        body: dict[str, object] = {"query": query, "top_k": top_k, "owner": scope.owner}
        if scope.every_owner:
            body["all_owners"] = True
        try:
            response = self._client.post(self.search_url, json=body, timeout=self._timeout_s)
            response.raise_for_status()
            results = RemoteSearchResponse.model_validate_json(response.content).results
        except (httpx.HTTPError, ValidationError) as exc:
            warning = (
                f"retrieval service unavailable ({describe_failure(exc)}); "
                "answered without memories"
            )
            logger.warning("%s: %s", self.search_url, warning)
            return RetrievalResult([], warning, time.perf_counter() - started)
        kept = [r for r in results if r.owner is None or scope.reads(r.owner)]
        if len(kept) < len(results):
            logger.warning(
                "%s returned %d memories of other owners; dropped",
                self.search_url,
                len(results) - len(kept),
            )
        # The service's contract has no filters, so they are applied to what it returns.
        hits = [to_hit(result) for result in kept]
        hits = [hit for hit in hits if filters.accepts(hit.item)][:top_k]
        return RetrievalResult(hits, None, time.perf_counter() - started)

    def close(self) -> None:
        self._client.close()


def describe_failure(exc: Exception) -> str:
    """A short, client-safe description of why the service did not answer."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, ValidationError):
        return "malformed response"
    return type(exc).__name__


def to_hit(result: RemoteResult) -> SearchHit:
    item = MemoryItem(
        id=str(result.id),
        text=result.text,
        kind="transcript",
        timestamp=result.timestamp,
        created_at=datetime.now(UTC),
        speaker=result.speaker,
        emotion=result.emotion,
        source="rag-service",
        owner=result.owner,
    )
    return SearchHit(item=item, score=result.score)
