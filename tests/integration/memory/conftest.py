"""Fixtures for the store suite: a real SQLite file, and a throwaway PostgreSQL + pgvector
cluster started for the session (skipped, with the reason, where the binaries are missing)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.scratch_postgres import (
    NoPostgresError,
    PostgresCluster,
    empty_database,
    usable_postgres,
)
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryStore

StoreFactory = Callable[[int | None], MemoryStore]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        binaries = usable_postgres()
    except NoPostgresError as exc:
        pytest.skip(str(exc))
    cluster = PostgresCluster(binaries)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database for one test."""
    with empty_database(postgres_cluster.url()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens (and later closes) stores on one location of the parametrized backend; opening
    twice gives two handles on the same data, as a restart would."""
    opened: list[MemoryStore] = []
    if request.param == "sqlite":
        location = str(tmp_path / "memory.sqlite3")
    else:
        location = request.getfixturevalue("postgres_url")

    def open_store(embedding_dim: int | None) -> MemoryStore:
        store: MemoryStore
        if request.param == "sqlite":
            store = SqliteMemoryStore(Path(location), embedding_dim)
        else:
            store = PostgresMemoryStore(location, embedding_dim)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
