"""Where the store lives: an embedded DuckDB file (one person, the default) or a DuckLake (a team).

``--db`` / ``$WATTGPU_DB`` is either a ``.duckdb`` file path or ``ducklake:postgres:<libpq connection string>``;
for a DuckLake, ``--data-path`` / ``$WATTGPU_DATA_PATH`` names the folder (local or shared) that holds its Parquet
files, and the retrained models and evaluation cache go beside them. :func:`resolve` turns those settings into one
:class:`Backend` value and :func:`connect` opens a DuckDB connection to it. DuckDB's extensions (``ducklake``,
``postgres``) are loaded only from the installed ``duckdb-ext-*`` wheels: the extension directory points at their
files, nothing is ever downloaded, and unsigned extensions stay disallowed. Only ``store.py`` uses this module.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import WattGPUError
from .paths import DEFAULT_DB

LAKE_PREFIX = "ducklake:"
LAKE_CATALOG = "wattgpu_lake"  # the name the DuckLake is attached under
_EXTENSION_WHEELS = {"ducklake": "duckdb-ext-ducklake", "postgres": "duckdb-ext-postgres"}


@dataclass(frozen=True)
class Backend:
    """One store location: ``path`` for the embedded file, ``catalog`` + ``data_path`` for a DuckLake."""

    path: Path | None = None
    catalog: str | None = None  # after "ducklake:", e.g. "postgres:dbname=wattgpu host=db"
    data_path: str | None = None

    @property
    def is_lake(self) -> bool:
        return self.catalog is not None

    @property
    def key(self) -> str:
        """A string naming the store, for cache keys (and :func:`resolve` turns it back into this backend)."""
        return LAKE_PREFIX + self.catalog if self.is_lake else str(Path(self.path).resolve())

    @property
    def home(self) -> Path:
        """The folder for files that belong with the data: retrained models, evaluation cache."""
        if self.is_lake:
            return Path(self.data_path)
        return Path(self.path).resolve().parent

    def describe(self) -> str:
        """The store for messages and ``stats``: the file, or the DuckLake with any password hidden."""
        if not self.is_lake:
            return str(self.path)
        catalog = re.sub(r"(password\s*=\s*)(\S+)", r"\1***", self.catalog)
        return f"{LAKE_PREFIX}{catalog} (data: {self.data_path})"


def resolve(db: Backend | str | os.PathLike | None = None, data_path: str | os.PathLike | None = None) -> Backend:
    """The backend for ``--db`` / ``--data-path``, each defaulting to ``$WATTGPU_DB`` / ``$WATTGPU_DATA_PATH``."""
    if isinstance(db, Backend):
        return db
    spec = str(db) if db not in (None, "") else os.environ.get("WATTGPU_DB") or str(DEFAULT_DB)
    if not spec.startswith(LAKE_PREFIX):
        return Backend(path=Path(spec))
    catalog = spec[len(LAKE_PREFIX):]
    if not catalog.startswith("postgres:") or not catalog[len("postgres:"):].strip():
        raise WattGPUError(f"unsupported store {spec!r}: a shared store is written "
                           "ducklake:postgres:<libpq connection string>, e.g. 'ducklake:postgres:dbname=wattgpu "
                           "host=db.internal user=wattgpu'")
    data = str(data_path) if data_path not in (None, "") else os.environ.get("WATTGPU_DATA_PATH")
    if not data:
        raise WattGPUError("a DuckLake store needs the folder for its Parquet files: pass --data-path or set "
                           "WATTGPU_DATA_PATH (a local or shared directory every replica can reach)")
    if "://" in data:
        raise WattGPUError(f"data path {data!r}: object-store URLs need DuckDB's httpfs extension, which is not "
                           "installed; use a local or shared directory")
    return Backend(catalog=catalog, data_path=str(Path(data).resolve()))


def extension_directory() -> str:
    """The folder DuckDB loads extensions from: the files shipped by the ``duckdb-ext-*`` wheels."""
    folders = set()
    for extension, wheel in _EXTENSION_WHEELS.items():
        try:
            dist = importlib.metadata.distribution(wheel)
        except importlib.metadata.PackageNotFoundError:
            raise WattGPUError(f"the DuckDB extension {extension!r} is not installed: `pip install -r "
                               f"requirements.txt` installs it from the {wheel} package") from None
        folders.add(str(dist.locate_file("duckdb_ext/extensions")))
    if len(folders) != 1:
        raise WattGPUError(f"the DuckDB extension packages are installed in different places: {sorted(folders)}")
    return folders.pop()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _lake_connection(backend: Backend, read_only: bool) -> duckdb.DuckDBPyConnection:
    config = {"extension_directory": extension_directory(), "allow_unsigned_extensions": "false",
              "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    con = duckdb.connect(config=config)
    try:
        for extension in _EXTENSION_WHEELS:
            con.execute(f"LOAD {extension}")
    except duckdb.Error as exc:
        con.close()
        raise WattGPUError(f"cannot load the DuckDB extensions from {config['extension_directory']}: "
                           f"{str(exc).splitlines()[0]}; reinstall requirements.txt (duckdb and the "
                           "duckdb-ext-* wheels must be of one DuckDB version)") from None
    if not read_only:
        Path(backend.data_path).mkdir(parents=True, exist_ok=True)
    # ATTACH takes no ? parameters: both settings (the deployment's, not uploaded data) go in as quoted literals.
    options = [f"DATA_PATH {_literal(backend.data_path)}"] + (["READ_ONLY"] if read_only else [])
    for attempt in range(5):
        try:
            con.execute(f"ATTACH {_literal(LAKE_PREFIX + backend.catalog)} AS {LAKE_CATALOG} ({', '.join(options)})")
            con.execute(f"USE {LAKE_CATALOG}")
            return con
        except duckdb.Error as exc:
            if "initialize DuckLake" in str(exc) and attempt < 4:  # another process is creating the catalog now
                time.sleep(0.2 * (attempt + 1))
                continue
            con.close()
            raise WattGPUError(f"cannot open the shared store {backend.describe()}: {str(exc).splitlines()[0]}; "
                               "check that PostgreSQL is running and the connection string is right") from None
    raise AssertionError("unreachable")


def connect(backend: Backend, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the store; the caller handles errors of the embedded file (lock, not a store)."""
    if backend.is_lake:
        return _lake_connection(backend, read_only)
    return duckdb.connect(str(backend.path), read_only=read_only)


def cursor(backend: Backend, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor on ``con`` whose unqualified table names mean the store's tables (a DuckLake is attached, not
    the connection's own database, and ``USE`` holds per cursor)."""
    cur = con.cursor()
    if backend.is_lake:
        cur.execute(f"USE {LAKE_CATALOG}")
    return cur


def cli_actor() -> str:
    """Who writes when no one is signed in: ``cli:<user>@<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"
