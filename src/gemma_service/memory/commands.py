"""What `gemma-service memory import` and `gemma-service memory search` do."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.models import NO_FILTERS, MemoryItemIn, SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.retriever import RetrievalResult
from gemma_service.memory.service import MemoryService

IMPORT_BATCH_ITEMS = 128


def read_jsonl(path: Path) -> list[MemoryItemIn]:
    """Every line of ``path`` as a memory; the first bad line raises, naming line and field."""
    items: list[MemoryItemIn] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise InvalidRequestError("expected a JSON object")
                items.append(MemoryItemIn.parse(data))
            except json.JSONDecodeError as exc:
                raise InvalidRequestError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            except InvalidRequestError as exc:
                raise InvalidRequestError(
                    f"{path}:{number}: {exc.message}", param=exc.param
                ) from exc
    return items


def import_jsonl(
    service: MemoryService, path: Path, *, scope: OwnerScope, show_progress: bool = True
) -> list[str]:
    """Validate the whole file first (nothing is stored if a line is bad), then store it as the
    scope's owner's in batches under a progress bar; returns the stored ids."""
    items = read_jsonl(path)
    ids: list[str] = []
    with tqdm(total=len(items), unit="item", desc="importing", disable=not show_progress) as bar:
        for start in range(0, len(items), IMPORT_BATCH_ITEMS):
            batch = items[start : start + IMPORT_BATCH_ITEMS]
            ids.extend(service.ingest(batch, scope=scope))
            bar.update(len(batch))
    return ids


def search_cli(
    service: MemoryService,
    query: str,
    *,
    scope: OwnerScope,
    top_k: int = 5,
    filters: SearchFilters = NO_FILTERS,
) -> str:
    """The search's results (within ``scope``) as text for a terminal."""
    return format_results(service.search(query, filters, top_k, scope=scope))


def format_results(result: RetrievalResult) -> str:
    lines = [f"{len(result.hits)} result(s) in {result.elapsed_s * 1000:.0f} ms"]
    if result.warning:
        lines.append(f"warning: {result.warning}")
    for number, hit in enumerate(result.hits, 1):
        item = hit.item
        when = item.timestamp.strftime("%Y-%m-%d %H:%M") if item.timestamp else "-"
        who = " ".join(
            part for part in (item.speaker, f"({item.emotion})" if item.emotion else "") if part
        )
        whose = f" ({item.owner})" if item.owner else ""
        lines.append(f"[{number}] {hit.score:.3f} {when} {who or '-'} {item.id}{whose}")
        lines.append(f"    {' '.join(item.text.split())[:300]}")
    return "\n".join(lines)
