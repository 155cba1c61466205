"""A throwaway PostgreSQL cluster on a Unix socket, shared by the PostgreSQL tests and `bench_workers`.

One copy of the start-up, because it has details that are easy to get wrong twice: as root the
server must run as the `postgres` user (it refuses root), the socket lives in the cluster's own
temporary folder (no TCP, nothing shared with a system server), and fsync is off (a test cluster
need not survive a crash).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool


def pg_program(name: str) -> str | None:
    """The path of one of PostgreSQL's programs (initdb, pg_ctl): on PATH, else Debian's versioned folders."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def free_port() -> int:
    """A port no other cluster on this machine uses (it names the socket file)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_cluster(prefix: str, *, port: int | None = None, options: str = "") -> Iterator[str]:
    """A URL template (``{db}``) for a fresh cluster in a temporary folder; stopped and removed on the way out.

    `port` None picks a free one; `options` are more server settings (``-c max_connections=200``).
    The caller checks first that `pg_program` finds initdb and pg_ctl.
    """
    initdb, pg_ctl = pg_program("initdb"), pg_program("pg_ctl")
    if not (initdb and pg_ctl):
        raise FileNotFoundError("PostgreSQL's initdb/pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix=prefix))
    as_postgres = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)

        def as_postgres() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    port = free_port() if port is None else port

    def run(*args: str) -> None:
        subprocess.run(
            args,
            check=True,
            capture_output=True,
            preexec_fn=as_postgres,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},
        )

    data = root / "data"
    run(initdb, "-D", str(data), "-U", "coach", "--auth=trust", "--no-sync", "-E", "UTF8")
    server_options = f"-k {root} -c listen_addresses='' -p {port} -F -c fsync=off {options}".rstrip()
    run(pg_ctl, "-D", str(data), "-o", server_options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://coach@/{{db}}?host={root}&port={port}"
    finally:
        subprocess.run(
            [pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            preexec_fn=as_postgres,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: str, prefix: str, digits: int = 10) -> str:
    """A new, empty database on the cluster `server` (a URL template), as a URL."""
    name = f"{prefix}{uuid.uuid4().hex[:digits]}"
    admin = create_engine(server.format(db="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.format(db=name)
