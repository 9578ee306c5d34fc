"""A throwaway PostgreSQL cluster for the DuckLake tests and bench/bench_lake.py (Debian's ``postgresql`` package).

``throwaway_cluster`` runs ``initdb`` into a temporary folder, starts the server with ``pg_ctl`` on a free port
(TCP on 127.0.0.1 only, trust authentication, nothing else listening) and stops it and deletes the folder at the
end, whatever happened. PostgreSQL refuses to run as root, so as root (CI) its binaries run as the ``postgres`` user
that the package creates. ``find_bin_dir`` says where the binaries are, or None (callers skip with that reason).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

NO_POSTGRES = ("no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql/*/bin or on PATH; "
               "install the distribution's `postgresql` package (.ci/run does) to run the DuckLake tests")
_counter = itertools.count()


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: the newest /usr/lib/postgresql/<major>/bin, else PATH; None if none."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    bin_dir: Path
    port: int
    as_user: tuple[str, ...]  # ("runuser", "-u", "postgres", "--") as root, else ()

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin_dir / tool), *args], check=True, capture_output=True,
                              text=True, timeout=120)

    def libpq(self, dbname: str = "postgres") -> str:
        return f"dbname={dbname} host=127.0.0.1 port={self.port} user=postgres"

    def new_database(self, prefix: str = "lake") -> str:
        """Create an empty database; returns its libpq connection string."""
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.libpq(name)

    def lake_spec(self, prefix: str = "lake") -> str:
        """A fresh ``ducklake:postgres:...`` store spec on its own database."""
        return "ducklake:postgres:" + self.new_database(prefix)


@contextlib.contextmanager
def throwaway_cluster():
    """Yield a running :class:`Cluster`; it is stopped and its folder removed on exit."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(NO_POSTGRES)
    as_user: tuple[str, ...] = ()
    folder = Path(tempfile.mkdtemp(prefix="wattgpu-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the package's own user
        as_user = ("runuser", "-u", "postgres", "--")
        shutil.chown(folder, "postgres", "postgres")
    datadir, log = folder / "data", folder / "server.log"
    cluster = Cluster(bin_dir, _free_port(), as_user)
    started = False
    try:
        cluster.run("initdb", "-D", str(datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        cluster.run("pg_ctl", "-D", str(datadir), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        yield cluster
    finally:
        if started:
            cluster.run("pg_ctl", "-D", str(datadir), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(folder, ignore_errors=True)
