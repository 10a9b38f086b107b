"""A throwaway PostgreSQL + pgvector cluster (initdb in a temporary directory) for the store
suite, `memory eval --store postgres` and `memory bench`."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


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
        self.root = Path(tempfile.mkdtemp(prefix="gemma-scratch-pg-"))
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
            # Scratch data: durability is tested on SQLite, not here.
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


class NoPostgresError(RuntimeError):
    """No PostgreSQL with pgvector was found on this machine."""


def usable_postgres() -> PostgresBinaries:
    """The first installation with pgvector, or NoPostgresError saying what to install."""
    installations = find_postgres()
    if not installations:
        raise NoPostgresError(
            "PostgreSQL not found (install the pgserver Python package, or "
            "apt-get install postgresql postgresql-NN-pgvector)"
        )
    if not installations[0].has_pgvector:
        raise NoPostgresError(
            f"pgvector is not installed for the PostgreSQL in {installations[0].bindir} "
            "(install postgresql-NN-pgvector or the pgserver Python package, or set "
            "GEMMA_TEST_PG_BINDIR to a PostgreSQL bin directory that has it)"
        )
    return installations[0]


@contextlib.contextmanager
def scratch_database(server_url: str | None = None) -> Iterator[str]:
    """The URL of an empty database, dropped afterwards: on ``server_url``'s server (the role
    must be allowed to create databases) or in a scratch cluster started for the purpose."""
    cluster: PostgresCluster | None = None
    if server_url is None:
        cluster = PostgresCluster(usable_postgres())
        cluster.start()
        server_url = cluster.url()
    try:
        with empty_database(server_url) as url:
            yield url
    finally:
        if cluster is not None:
            cluster.stop()


@contextlib.contextmanager
def empty_database(server_url: str) -> Iterator[str]:
    """Create a database named memory_<random> next to ``server_url``'s and drop it after."""
    import psycopg

    name = f"memory_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlsplit(server_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
