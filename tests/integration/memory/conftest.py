"""Fixtures for the store suite: a real SQLite file, and a throwaway PostgreSQL + pgvector
cluster started for the session (skipped, with the reason, where the binaries are missing)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryStore

StoreFactory = Callable[[int | None], MemoryStore]


@dataclass(frozen=True)
class PostgresBinaries:
    bindir: Path
    has_pgvector: bool


def find_postgres() -> list[PostgresBinaries]:
    """PostgreSQL installations, those with pgvector first: $GEMMA_TEST_PG_BINDIR, the pgserver
    package's, then Debian's, newest first."""
    candidates: list[Path] = []
    if os.environ.get("GEMMA_TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["GEMMA_TEST_PG_BINDIR"]))
    # The pgserver wheel ships PostgreSQL with pgvector, for systems whose packages lack it
    # (Debian bookworm has no postgresql-15-pgvector). Located without importing it.
    pgserver = importlib.util.find_spec("pgserver")
    if pgserver is not None and pgserver.submodule_search_locations:
        candidates.append(Path(pgserver.submodule_search_locations[0]) / "pginstall" / "bin")
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(debian.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0)
        candidates.extend(version / "bin" for version in reversed(versions))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    found = [
        PostgresBinaries(bindir, _has_pgvector(bindir))
        for bindir in dict.fromkeys(candidates)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()
    ]
    return sorted(found, key=lambda b: not b.has_pgvector)


def _has_pgvector(bindir: Path) -> bool:
    share_dirs = [
        bindir.parent / "share" / "postgresql",
        bindir.parent / "share",
        Path("/usr/share/postgresql") / bindir.parent.name,
    ]
    return any((share / "extension" / "vector.control").is_file() for share in share_dirs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory, listening on 127.0.0.1 and a private socket."""

    def __init__(self, binaries: PostgresBinaries) -> None:
        self.bindir = binaries.bindir
        self.root = Path(tempfile.mkdtemp(prefix="gemma-test-pg-"))
        self.port = _free_port()
        self.user = "postgres"
        # initdb refuses to run as root; the Debian package creates a 'postgres' user for this.
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_user:
            shutil.chown(self.root, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self.root / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            # A test cluster: durability is SQLite's test, not PostgreSQL's.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(data), "-l", log, "-o", options, "-w", "start"
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "stop",
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    installations = find_postgres()
    if not installations:
        pytest.skip("PostgreSQL not found (apt-get install postgresql postgresql-15-pgvector)")
    if not installations[0].has_pgvector:
        pytest.skip(
            f"pgvector is not installed for the PostgreSQL in {installations[0].bindir} "
            "(install postgresql-NN-pgvector or the pgserver Python package, or set "
            "GEMMA_TEST_PG_BINDIR to a PostgreSQL bin directory that has it)"
        )
    cluster = PostgresCluster(installations[0])
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
    import psycopg

    name = f"memory_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_cluster.url(name)
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
