"""The store: GPUs, LLMs, measured runs, sources and import batches. All SQL lives here.

No process holds an embedded store file open: every read and every write opens the file, does its work and closes
it (milliseconds), so the app, any number of its sessions and any number of CLI processes share one file. DuckDB lets
one process at a time open a file for writing; an operation that finds the file busy retries until the other
process is done, up to ``WATTGPU_LOCK_TIMEOUT_S`` seconds (default 30), then says who held it. Within a process,
threads share one DuckDB instance and writes are serialised by a lock. Each write runs in one transaction: it
lands whole or leaves the store exactly as it was, and bumps ``data_version`` (a key of the store's contents in the
``meta`` table) that the app's caches are keyed on, so every process sees another's write on its next query.
Every value from outside is passed as a ``?`` parameter; identifiers come only from ``schema``.

The store is an embedded DuckDB file or a DuckLake (PostgreSQL catalog, Parquet files) that many processes write at
once (``backend.py`` says which; a process keeps one attached DuckLake connection and a cursor per operation). Every
write also bumps the ``writes`` row of ``meta``, so two concurrent writers always conflict in DuckLake; the loser is
rolled back and retried from the start on the newer data, a bounded number of times, so an ingest never adds a run
another writer added meanwhile.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from . import backend as backends
from .errors import ConflictError, Issue, StoreBusyError, WattGPUError
from .faults import pause_point
from .identity import COMPARED_COLUMNS, run_keys
from .parsed import PreparedImport
from .paths import ROOT, SEED_DIR
from .schema import (
    BATCH_COLUMNS,
    GPU_COLUMNS,
    LLM_COLUMNS,
    PAPER_GPU_COLUMNS,
    RUN_COLUMNS,
    RUN_IDENTITY_COLUMNS,
    SOURCE_COLUMNS,
    Column,
    names,
)
from .sources import SOURCES

_NUMERIC_RUN_COLUMNS = {c.name for c in RUN_COLUMNS if c.is_numeric}
SCHEMA_VERSION = "2"  # 2: runs.run_key (natural identity), runs_replaced, meta.data_version, batches.added_by
ON_CONFLICT = ("refuse", "replace", "skip")
LOCK_TIMEOUT_ENV = "WATTGPU_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 30.0
_TABLES: dict[str, tuple[Column, ...]] = {
    "gpus": GPU_COLUMNS,
    "llms": LLM_COLUMNS,
    "paper_gpu_features": PAPER_GPU_COLUMNS,
    "runs": RUN_COLUMNS,
    "sources": SOURCE_COLUMNS,
    "batches": BATCH_COLUMNS,
}
_KEYS = {"gpus": "gpu_id", "llms": "llm_id", "runs": "run_id", "sources": "source_id", "batches": "batch_id",
         "paper_gpu_features": "gpu_id"}
_SEED_FILES = {"gpus": "gpus.csv", "llms": "llms.csv", "paper_gpu_features": "paper_gpu_features.csv",
               "runs": "runs.csv", "sources": "sources.csv"}


@dataclass(frozen=True)
class IngestResult:
    batch_id: str | None
    added: int
    duplicates_in_store: int
    duplicates_in_file: int
    format: str
    message: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    replaced: int = 0  # stored runs whose measured values this ingest replaced (on_conflict="replace")
    conflicts_skipped: int = 0  # re-sent runs with other measured values, kept as stored (on_conflict="skip")


def _ddl(table: str, columns: tuple[Column, ...], lake: bool = False) -> str:
    cols = [f"{c.name} {c.sql_type}" for c in columns]
    if lake:  # DuckLake has no PRIMARY KEY / UNIQUE: the writers check keys inside their (serialised) transaction
        cols += ["seq BIGINT", "run_key VARCHAR"] if table == "runs" else []
    elif table == "runs":
        # No PRIMARY KEY on runs: run_id is unique by construction (the seed build refuses duplicates, and
        # Store.ingest, the only writer, skips fingerprints already stored and checks the new ones inside its
        # transaction). The key's index cost about a fifth of the time of ingesting 100,000 rows.
        cols += ["seq BIGINT", "run_key VARCHAR"]
    else:
        cols.append(f"PRIMARY KEY ({_KEYS[table]})")
    return f"CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(cols) + ")"


# Runs that an upload replaced (``on_conflict="replace"``), kept so that removing that upload restores them.
_REPLACED_DDL = ("CREATE TABLE IF NOT EXISTS runs_replaced (" + ", ".join(f"{c.name} {c.sql_type}" for c in RUN_COLUMNS)
                 + ", seq BIGINT, run_key VARCHAR, replaced_by VARCHAR)")


def _diff_sql(stored: str, new: str, what: str) -> str:
    """SQL text listing the compared columns (``identity.COMPARED_COLUMNS``) in which two rows of one natural key
    differ, where both state a value: their names (``what="names"``, comma-separated) or the values too."""
    parts = []
    for c in COMPARED_COLUMNS:
        a, b = f"{stored}.{c}", f"{new}.{c}"
        if c in _NUMERIC_RUN_COLUMNS:
            x, y = f"CAST({a} AS DOUBLE)", f"CAST({b} AS DOUBLE)"
            differ = (f"coalesce(NOT isnan({x}) AND NOT isnan({y}) AND abs({x} - {y}) > "
                      f"1e-9 * greatest(abs({x}), abs({y})), false)")
        else:
            differ = f"coalesce(lower(trim({a})) <> lower(trim({b})), false)"
        shown = f"'{c}'" if what == "names" else f"'{c} ' || CAST({a} AS VARCHAR) || ' stored, ' || CAST({b} AS VARCHAR) || ' sent'"
        parts.append(f"CASE WHEN {differ} THEN {shown} END")
    return f"concat_ws('{',' if what == 'names' else '; '}', " + ", ".join(parts) + ")"


def _cast_frame(frame: pd.DataFrame, columns: tuple[Column, ...]) -> pd.DataFrame:
    """A frame with exactly ``columns``, in order, with types DuckDB maps cleanly."""
    out = pd.DataFrame(index=frame.index)
    for c in columns:
        values = frame[c.name] if c.name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if c.sql_type == "DOUBLE":
            out[c.name] = pd.to_numeric(values, errors="coerce").astype(float)
        elif c.sql_type in ("INTEGER", "BIGINT"):
            out[c.name] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif c.sql_type == "BOOLEAN":
            out[c.name] = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                     else str(v).strip().lower() in ("true", "1", "yes")).astype("boolean")
        elif c.sql_type == "TIMESTAMP":
            out[c.name] = pd.to_datetime(values, utc=True).dt.tz_localize(None)
        elif values.dtype == "str":  # Arrow-backed text: DuckDB and pyarrow read it without a copy per value
            out[c.name] = values
        else:
            out[c.name] = values.astype(object).where(values.notna(), None)
    return out.reset_index(drop=True)


def read_seed_table(table: str, seed_dir: Path = SEED_DIR) -> pd.DataFrame:
    path = seed_dir / _SEED_FILES[table]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return _cast_frame(frame, _TABLES[table])


def run_id_sql(alias: str = "") -> str:
    """SQL expression for a run's content fingerprint (md5 over its identity columns)."""
    prefix = f"{alias}." if alias else ""
    parts = ", ".join(f"coalesce(CAST({prefix}{c} AS VARCHAR), '')" for c in RUN_IDENTITY_COLUMNS)
    return f"substr(md5(concat_ws('|', {parts})), 1, 20)"


def compute_run_ids(frame: pd.DataFrame) -> pd.Series:
    """Run fingerprints for a frame of runs, computed exactly as the store computes them."""
    con = duckdb.connect()
    try:
        typed = _cast_frame(frame, tuple(c for c in RUN_COLUMNS))
        con.register("incoming", typed)
        ids = con.execute(f"SELECT {run_id_sql()} AS run_id FROM incoming").df()["run_id"]
        return pd.Series(ids.to_numpy(), index=frame.index, name="run_id")
    finally:
        con.close()


def _connect(path: Path | backends.Backend, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    backend = backends.resolve(path)
    path = backend.describe()
    if backend.is_lake:
        return backends.connect(backend, read_only)
    try:
        return backends.connect(backend, read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            holder = re.search(r"\(PID \d+\)", str(exc))
            raise StoreBusyError(
                f"the store {path} is in use by another process{' ' + holder.group(0) if holder else ''}"
            ) from None
        raise WattGPUError(f"cannot open the store {path}: {str(exc).splitlines()[0]}; rebuild it with "
                           f"`python -m wattgpu_core build-store --db {path}`") from None
    except (duckdb.BinderException, duckdb.ConnectionException) as exc:
        text = str(exc)
        if "file handle conflict" in text or "different configuration" in text:
            # another thread of this process is opening or closing the same file (DuckDB's per-process instance
            # cache): as transient as another process's lock, so the caller waits and tries again
            raise StoreBusyError(f"the store {path} is being opened or closed by another thread") from None
        raise WattGPUError(f"{path} is not a WattGPU store ({text.splitlines()[0]}); rebuild it with "
                           f"`python -m wattgpu_core build-store --db {path}`") from None
    except duckdb.Error as exc:
        raise WattGPUError(f"{path} is not a WattGPU store ({str(exc).splitlines()[0]}); rebuild it with "
                           f"`python -m wattgpu_core build-store --db {path}`") from None


def _relative_to_checkout(path: Path) -> str:
    """``path`` relative to the checkout (``data/seed``) when it lies inside it, else absolute (POSIX form)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def lock_timeout_s() -> float:
    """How long an operation waits for a store another process is using: ``$WATTGPU_LOCK_TIMEOUT_S`` or 30 s."""
    try:
        return max(0.0, float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT_S)))
    except ValueError:
        raise WattGPUError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds") from None


def _open_waiting(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``, waiting (bounded, with jittered backoff) while another process holds the file."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            return _connect(path, read_only)
        except StoreBusyError as exc:
            if time.monotonic() + delay > deadline:
                raise StoreBusyError(
                    f"{exc} and stayed so for {timeout_s:g} s: a long write or read there did not finish. Try again, "
                    f"wait longer with {LOCK_TIMEOUT_ENV}=SECONDS, or point --db / WATTGPU_DB at another file"
                ) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.6, 0.2)


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
_VERSIONS: dict[str, tuple[tuple, str]] = {}  # store path -> (file signature, data version)
_FINGERPRINTS: dict[str, tuple[tuple, str]] = {}  # store path -> (file signature, fingerprint)


def _write_lock(key: str) -> threading.Lock:
    """One lock per store per process (``Backend.key``): threads (Streamlit sessions) write one at a time."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


def _file_signature(path: Path) -> tuple:
    """(mtime, size, inode) of the store file and its WAL: every commit changes one of them."""
    sig = []
    for p in (path, Path(str(path) + ".wal")):
        try:
            st = p.stat()
            sig.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            sig.append(None)
    return tuple(sig)


WRITE_ATTEMPTS = 12  # a write that conflicts with other writers this many times in a row gives up


def _conflict(exc: BaseException) -> bool:
    """A transaction that lost to a concurrent writer (DuckLake's optimistic concurrency): safe to redo whole."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def _retried(method):
    """Run a write again from the start (a fresh transaction on the newer data) when another writer won a
    conflict, with growing random waits; after ``WRITE_ATTEMPTS`` tries, a clear error (nothing was written)."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return method(self, *args, **kwargs)
            except duckdb.TransactionException as exc:
                if not _conflict(exc):
                    raise
                if attempt == WRITE_ATTEMPTS:
                    raise WattGPUError(
                        f"the store is busy: this write conflicted with other writers {attempt} times in a row and "
                        "was given up; nothing was written. Try again in a moment") from None
                self.conflict_retries += 1
                time.sleep(random.uniform(0.5, 1.5) * min(0.1 * 2 ** attempt, 5.0))  # random: writers spread out
        raise AssertionError("unreachable")
    return run


_LAKE_CONNECTIONS: dict[tuple[str, bool], duckdb.DuckDBPyConnection] = {}


def _lake_connection(backend: backends.Backend, read_only: bool) -> duckdb.DuckDBPyConnection:
    """The process's one attached connection to a DuckLake (attaching costs a PostgreSQL round trip and loading two
    extensions; a DuckLake has no file lock to release, and every transaction reads the catalog's latest snapshot)."""
    key = (backend.key, read_only)
    with _WRITE_LOCKS_GUARD:
        con = _LAKE_CONNECTIONS.get(key)
        if con is None:
            con = _LAKE_CONNECTIONS[key] = _connect(backend, read_only)
        return con


class Store:
    """A WattGPU store. Use :meth:`open` (creating it from the seed data when missing) or :meth:`build`.

    ``path`` is a ``.duckdb`` file, a ``ducklake:postgres:...`` spec (data path from ``$WATTGPU_DATA_PATH``) or a
    :class:`~wattgpu_core.backend.Backend`. A Store holds no connection to a file: each call opens the file, runs,
    and closes it (see the module docstring)."""

    def __init__(self, path: Path | str | backends.Backend, read_only: bool = False, timeout_s: float | None = None):
        self.backend = backends.resolve(path)
        self.path = self.backend.path  # the embedded file; None for a DuckLake
        self.home = self.backend.home  # retrained models and the evaluation cache live here
        self.read_only = read_only
        self.timeout_s = lock_timeout_s() if timeout_s is None else float(timeout_s)
        self.conflict_retries = 0  # writes redone after losing to a concurrent writer (DuckLake)

    # -- lifecycle --------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str | backends.Backend | None = None, read_only: bool = False,
             seed_dir: Path = SEED_DIR) -> Store:
        """Open the store, building it from the seed data first if the file (or the DuckLake) does not exist yet."""
        backend = backends.resolve(path)
        if backend.is_lake:
            store = cls(backend, read_only=read_only)
            if store._meta("schema_version") is None and not read_only:
                store.close()
                return cls._build_lake(backend, seed_dir, only_if_missing=True)
        else:
            path = backend.path
            if not path.exists():
                if read_only:
                    raise WattGPUError(f"no store at {path}; run `python -m wattgpu_core build-store` first")
                return cls.build(path, seed_dir)
            store = cls(path, read_only=read_only)
        version = store._meta("schema_version")
        if version == "1" and not read_only:
            store._migrate_from_1()
            version = store._meta("schema_version")
        if version != SCHEMA_VERSION:
            raise WattGPUError(
                f"the store {path} has schema version {version!r}, this WattGPU needs {SCHEMA_VERSION!r}; "
                f"rebuild it with `python -m wattgpu_core build-store`"
            )
        return store

    @classmethod
    def build(cls, path: Path | str | None = None, seed_dir: Path = SEED_DIR) -> Store:
        """(Re)create the store at ``path`` from the seed tables. The old file is replaced only on success."""
        backend = backends.resolve(path)
        if backend.is_lake:
            return cls._build_lake(backend, seed_dir)
        path = backend.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".building")
        for p in (tmp, Path(str(tmp) + ".wal")):
            if p.exists():
                p.unlink()
        store = cls(tmp)
        try:
            with store._transaction() as cur:
                store._create_schema(cur)
                store._load_seed(seed_dir, cur)
        except BaseException:
            for p in (tmp, Path(str(tmp) + ".wal")):
                p.unlink(missing_ok=True)
            raise
        if path.exists():  # never pull the file from under a process that is using it: wait until none is
            try:
                _open_waiting(path, False, store.timeout_s).close()
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            Path(str(path) + ".wal").unlink(missing_ok=True)
        tmp.replace(path)
        _VERSIONS.pop(str(path), None)
        return cls(path)

    @classmethod
    def _build_lake(cls, backend: backends.Backend, seed_dir: Path, only_if_missing: bool = False) -> Store:
        """(Re)create a DuckLake store in one transaction: the old tables are dropped and the new ones filled
        together, so readers see the old store or the new one. With ``only_if_missing`` (first start of several
        replicas at once) a store another process built meanwhile is kept."""
        store = cls(backend)
        try:
            store._rebuild(seed_dir, only_if_missing)
        except BaseException:
            store.close()
            raise
        return store

    @_retried
    def _rebuild(self, seed_dir: Path, only_if_missing: bool) -> None:
        with self._transaction() as cur:
            if only_if_missing and cur.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                    "AND table_name = 'meta'").fetchall()[0][0]:
                return
            for table in (*_TABLES, "runs_replaced", "meta"):
                cur.execute(f"DROP TABLE IF EXISTS {table}")
            self._create_schema(cur)
            self._load_seed(seed_dir, cur)

    def close(self) -> None:
        """Nothing to release (no connection is held); kept so ``with Store.open(...)`` reads naturally."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _cursor(self):
        """A connection for one operation: a cursor on the process's DuckLake connection, or the embedded file
        opened (waiting while another process has it) and closed afterwards."""
        if self.backend.is_lake:
            cur = backends.cursor(self.backend, _lake_connection(self.backend, self.read_only))
            try:
                yield cur
            finally:
                cur.close()
            return
        con = _open_waiting(self.path, self.read_only, self.timeout_s)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self, stage: str = "write"):
        if self.read_only:
            raise WattGPUError("the store is open read-only")
        with _write_lock(self.backend.key), self._cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                # Every write rewrites the ``writes`` row: in DuckLake two concurrent writers then always conflict, so
                # the later one is retried on the newer data instead of both passing their checks on old data.
                cur.execute("UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE key = 'writes'")
                cur.execute("DELETE FROM meta WHERE key = 'data_version'")
                cur.execute("INSERT INTO meta VALUES ('data_version', ?)", [self._content_key(cur)])
                pause_point(f"{stage}:before-commit")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            pause_point(f"{stage}:after-commit")
        _VERSIONS.pop(str(self.path), None)

    @staticmethod
    def _content_key(cur) -> str:
        """The data version written by every write: a key of the batches and run count (undoing an upload restores
        the version before it, so caches and retrained models of that state are found again)."""
        row = cur.execute("SELECT md5(coalesce(string_agg(batch_id || ':' || coalesce(CAST(n_runs AS VARCHAR), ''), "
                          "',' ORDER BY batch_id), '')) FROM batches").fetchall()[0][0]
        runs = cur.execute("SELECT count(*) FROM runs").fetchall()[0][0]
        return f"{row[:16]}-{runs}"

    def data_version(self) -> str:
        """The store's data version, read from ``meta`` only when the file changed since the last read in this
        process (a ``stat`` of the file and its WAL otherwise): cheap enough to call on every page interaction. A
        DuckLake has no file to watch: its version is read from ``meta`` each time (one query on the attached
        connection)."""
        if self.backend.is_lake:
            return self._meta("data_version") or ""
        key = str(self.path)
        sig = _file_signature(self.path)
        memo = _VERSIONS.get(key)
        if memo is not None and memo[0] == sig:
            return memo[1]
        version = self._meta("data_version") or ""
        _VERSIONS[key] = (sig, version)
        return version

    def _create_schema(self, cur) -> None:
        lake = self.backend.is_lake
        for table, columns in _TABLES.items():
            cur.execute(_ddl(table, columns, lake))
        cur.execute(_REPLACED_DDL)
        cur.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR" + ("" if lake else " PRIMARY KEY")
                    + ", value VARCHAR)")
        cur.execute("DELETE FROM meta WHERE key IN ('schema_version', 'writes')")
        cur.execute("INSERT INTO meta VALUES ('schema_version', ?), ('writes', '0')", [SCHEMA_VERSION])

    def _migrate_from_1(self) -> None:
        """Schema 1 -> 2 in one transaction: natural keys for the stored runs, the replaced-runs table, who added each
        batch, the write counter and the version (only embedded files were ever at schema 1)."""
        runs = self._frame(f"SELECT {', '.join(names(RUN_COLUMNS))}, seq FROM runs")
        keys = pa.Table.from_pandas(pd.DataFrame({"seq": runs["seq"].astype("int64"), "k": run_keys(runs)}),
                                    preserve_index=False)
        with self._transaction("migrate") as cur:
            cur.execute("ALTER TABLE runs ADD COLUMN run_key VARCHAR")
            cur.register("_keys", keys)
            cur.execute("UPDATE runs SET run_key = _keys.k FROM _keys WHERE runs.seq = _keys.seq")
            cur.execute(_REPLACED_DDL)
            cur.execute("ALTER TABLE batches ADD COLUMN added_by VARCHAR")
            cur.execute("DELETE FROM meta WHERE key IN ('schema_version', 'writes')")
            cur.execute("INSERT INTO meta VALUES ('schema_version', ?), ('writes', '0')", [SCHEMA_VERSION])

    def _meta(self, key: str) -> str | None:
        with self._cursor() as cur:
            try:
                rows = cur.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
            except duckdb.CatalogException:
                return None
        return rows[0][0] if rows else None

    def _insert_frame(self, cur, table: str, frame: pd.DataFrame) -> None:
        typed = _cast_frame(frame, _TABLES[table])
        cur.register("_frame_rows", typed)  # not "_incoming", which an ingest may still have registered
        try:
            cols = ", ".join(typed.columns)
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame_rows")
        finally:
            cur.unregister("_frame_rows")

    def _load_seed(self, seed_dir: Path, cur) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        # the checkout's own seed is named relative to it, so equal seed data hash equal wherever it is checked out
        shown = _relative_to_checkout(Path(seed_dir))
        for table in ("gpus", "llms", "paper_gpu_features", "sources"):
            self._insert_frame(cur, table, read_seed_table(table, seed_dir))
        runs = read_seed_table("runs", seed_dir)
        runs["seq"] = np.arange(len(runs), dtype=np.int64)
        typed = _cast_frame(runs, RUN_COLUMNS)
        typed["seq"] = runs["seq"].to_numpy()
        typed["run_key"] = run_keys(typed).to_numpy()
        cur.register("_incoming", typed)
        cur.execute(f"INSERT INTO runs SELECT {', '.join(names(RUN_COLUMNS))}, seq, run_key FROM _incoming")
        cur.unregister("_incoming")
        batches = []
        counts = runs.groupby("source_id").size()
        for source_id, n in counts.items():
            batches.append({"batch_id": f"seed:{source_id}", "kind": "seed", "source_id": source_id,
                            "file_name": f"{shown}/runs.csv", "file_sha256": None, "format": "seed",
                            "imported_at": now, "n_runs": int(n), "n_gpus": 0, "n_llms": 0, "notes": "",
                            "added_by": backends.cli_actor()})
        batches.append({"batch_id": "seed", "kind": "seed", "source_id": "catalog",
                        "file_name": shown, "file_sha256": None, "format": "seed",
                        "imported_at": now, "n_runs": 0, "n_gpus": None, "n_llms": None,
                        "notes": "GPU and LLM catalogs", "added_by": backends.cli_actor()})
        self._insert_frame(cur, "batches", pd.DataFrame(batches))
        # Seed runs keep their per-source batch id.
        cur.execute("UPDATE runs SET batch_id = 'seed:' || source_id WHERE batch_id IS NULL")

    # -- reads ------------------------------------------------------------------------------------------------------
    def _frame(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self._cursor() as cur:
            return cur.execute(sql, params or []).df()

    def gpus(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(names(GPU_COLUMNS))} FROM gpus ORDER BY user_defined, gpu_id")

    def llms(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(names(LLM_COLUMNS))} FROM llms ORDER BY user_defined, llm_id")

    def paper_gpu_features(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(names(PAPER_GPU_COLUMNS))} FROM paper_gpu_features ORDER BY gpu_id")

    def sources(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(names(SOURCE_COLUMNS))} FROM sources ORDER BY source_id")

    def batches(self) -> pd.DataFrame:
        return self._frame(f"SELECT {', '.join(names(BATCH_COLUMNS))} FROM batches ORDER BY imported_at, batch_id")

    def runs(
        self,
        source_ids: list[str] | None = None,
        llm_ids: list[str] | None = None,
        gpu_ids: list[str] | None = None,
        batch_ids: list[str] | None = None,
    ) -> pd.DataFrame:
        """Measured runs in insertion order, optionally filtered (each filter a list of ids)."""
        where, params = [], []
        for column, values in (("source_id", source_ids), ("llm_id", llm_ids), ("gpu_id", gpu_ids),
                               ("batch_id", batch_ids)):
            if values is not None:
                where.append(f"list_contains(?, {column})")
                params.append(list(values))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return self._frame(f"SELECT {', '.join(names(RUN_COLUMNS))} FROM runs{clause} ORDER BY seq", params)

    def stats(self) -> dict:
        with self._cursor() as cur:
            counts = {t: cur.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                      for t in ("gpus", "llms", "runs", "sources", "batches")}
            per_source = dict(cur.execute(
                "SELECT source_id, count(*) FROM runs GROUP BY source_id ORDER BY source_id").fetchall())
            uploads = cur.execute("SELECT count(*) FROM batches WHERE kind <> 'seed'").fetchall()[0][0]
            run_gpus = cur.execute("SELECT count(DISTINCT gpu_id) FROM runs").fetchall()[0][0]
            run_llms = cur.execute("SELECT count(DISTINCT llm_id) FROM runs").fetchall()[0][0]
        return {
            "gpus": int(counts["gpus"]),
            "llms": int(counts["llms"]),
            "runs": int(counts["runs"]),
            "runs_per_source": {k: int(v) for k, v in per_source.items()},
            "sources": int(counts["sources"]),
            "batches": int(counts["batches"]),
            "uploads": int(uploads),
            "gpus_with_runs": int(run_gpus),
            "llms_with_runs": int(run_llms),
            "db": self.backend.describe(),
        }

    def fingerprint(self) -> str:
        """A hash of everything in the store (tables and rows, order-independent); equal stores hash equal.

        Each row becomes a JSON list of its values as text (NULL stays null, so no two rows can print alike), rows
        are joined in key order and hashed inside DuckDB. Import times and who imported are left out, so undoing an
        upload restores the fingerprint exactly, and equal data built on either backend hashes equal. An embedded
        file's fingerprint is remembered in this process until the file changes (pages check it on every render)."""
        sig = None if self.backend.is_lake else _file_signature(self.path)
        memo = _FINGERPRINTS.get(str(self.path)) if sig is not None else None
        if memo is not None and memo[0] == sig:
            return memo[1]
        digest = hashlib.sha256()
        with self._cursor() as cur:
            for table, columns in _TABLES.items():
                values = ", ".join(f"CAST({c.name} AS VARCHAR)" for c in columns
                                   if not (table == "batches" and c.name in ("imported_at", "added_by")))
                count, md5 = cur.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(to_json([{values}]), chr(10) ORDER BY {_KEYS[table]}), "
                    f"'')) FROM {table}").fetchall()[0]
                digest.update(f"{table}:{count}:{md5};".encode())
        if sig is not None:
            _FINGERPRINTS[str(self.path)] = (sig, digest.hexdigest())
        return digest.hexdigest()

    # -- writes -----------------------------------------------------------------------------------------------------
    @_retried
    def ingest(self, prepared: PreparedImport, kind: str = "upload", on_conflict: str = "refuse",
               added_by: str | None = None) -> IngestResult:
        """Write validated runs in one transaction, idempotent on each run's natural key (``identity.run_keys``).

        A run whose key is stored already adds nothing when its measured values agree (blank values agree with
        anything); when they differ, ``on_conflict`` decides: ``refuse`` (the default) raises ``ConflictError`` naming
        rows and columns and writes nothing, ``skip`` keeps the stored runs, ``replace`` stores the new values (the
        old rows are kept aside, and removing this upload restores them). A run whose exact content is stored
        already under another key is skipped too. ``added_by`` (the signed-in user; default ``cli:<user>@<host>``)
        is recorded with the batch."""
        if on_conflict not in ON_CONFLICT:
            raise WattGPUError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, not {on_conflict!r}")
        frame = prepared.frame
        now = datetime.now(UTC).replace(tzinfo=None)
        batch_id = f"{kind}-{now:%Y%m%dT%H%M%S%f}-{(prepared.file_sha256 or 'x')[:8]}"
        typed = _cast_frame(frame, RUN_COLUMNS)
        typed["batch_id"] = batch_id
        typed["_ord"] = np.arange(len(typed), dtype=np.int64)
        typed["run_key"] = run_keys(typed).to_numpy()
        # An Arrow table scans into DuckDB without a Python object per value (pandas object columns need one).
        incoming = pa.Table.from_pandas(typed, preserve_index=False)
        n = self._write_runs(incoming, prepared, batch_id, kind, now, on_conflict, added_by)
        added, in_store, dup_file = n["added"], n["in_store"], n["total"] - n["distinct"]
        if added:
            msg = f"added {added} run{'s' if added != 1 else ''} as batch {batch_id}"
            if n["replaced"]:
                msg += f" ({n['replaced']} replacing stored runs whose measured values differed)"
            if in_store:
                msg += f"; {in_store} already in the store were skipped"
        else:
            msg = (f"nothing added: all {n['distinct']} distinct run{'s' if n['distinct'] != 1 else ''} are already "
                   "in the store")
            if n["prior"]:
                msg += f" (this file was ingested before as batch {n['prior']})"
        if n["skipped"]:
            msg += (f"; {n['skipped']} run{'s' if n['skipped'] != 1 else ''} with measured values that differ from "
                    "the stored ones kept as stored (--on-conflict skip)")
        if dup_file:
            msg += f"; {dup_file} duplicate row{'s' if dup_file != 1 else ''} within the file counted once"
        return IngestResult(batch_id if added else None, int(added), int(in_store), int(dup_file), prepared.format,
                            msg, prepared.warnings, int(n["replaced"]), int(n["skipped"]))

    def _write_runs(self, incoming: pa.Table, prepared: PreparedImport, batch_id: str, kind: str, now: datetime,
                    on_conflict: str, added_by: str | None = None) -> dict:
        """Insert the runs whose natural key (or content) is not stored yet, in one transaction; returns counts.

        Steps, all inside the transaction: fingerprint the rows; keep the first row of each key (another row of the
        same key must agree with it, else the file is rejected); match the keys against the store and compare the
        measured values; refuse, skip or replace the conflicting runs; insert the rest."""
        cols = names(RUN_COLUMNS)
        total = incoming.num_rows
        with self._transaction("ingest") as cur:  # its connection, closed afterwards, drops the temp tables
            cur.register("_incoming", incoming)
            cur.execute(f"CREATE TEMP TABLE _in AS SELECT * REPLACE ({run_id_sql()} AS run_id) FROM _incoming")
            cur.execute("CREATE TEMP TABLE _first AS SELECT run_key, min(_ord) AS _ord FROM _in GROUP BY run_key")
            distinct = cur.execute("SELECT count(*) FROM _first").fetchall()[0][0]
            if distinct < total:
                clashes = cur.execute(
                    f"SELECT i._ord, f._ord, {_diff_sql('f', 'i', 'names')} AS diff FROM _in i "
                    "JOIN _first k ON k.run_key = i.run_key JOIN _in f ON f._ord = k._ord "
                    "WHERE i._ord <> f._ord AND diff <> '' ORDER BY i._ord").fetchall()
                if clashes:
                    raise ConflictError([Issue(int(i) + 1, diff.split(",")[0],
                                               f"repeats the run of row {int(f) + 1} (same natural key) with a "
                                               f"different {diff.replace(',', ', ')}; a file may hold a run once (number the "
                                               "repeats of one configuration in the iteration column)")
                                         for i, f, diff in clashes[:200]], len(clashes))
            cur.execute("CREATE TEMP TABLE _cand AS SELECT i.* FROM _in i JOIN _first k ON k._ord = i._ord")
            cur.execute(f"CREATE TEMP TABLE _match AS SELECT c._ord, r.seq, r.batch_id AS stored_batch, "
                        f"{_diff_sql('r', 'c', 'names')} AS diff, {_diff_sql('r', 'c', 'values')} AS detail "
                        "FROM _cand c JOIN runs r ON r.run_key = c.run_key")
            conflicts = cur.execute("SELECT _ord, stored_batch, diff, detail FROM _match WHERE diff <> '' "
                                    "ORDER BY _ord").fetchall()
            replaced = skipped = 0
            if conflicts and on_conflict == "refuse":
                raise ConflictError([Issue(int(o) + 1, diff.split(",")[0],
                                           f"this run is stored already (batch {b}) with different measured values: "
                                           f"{detail}; re-send with on-conflict 'replace' to store the new values or "
                                           f"'skip' to keep the stored ones") for o, b, diff, detail in conflicts[:200]],
                                    len(conflicts))
            if conflicts and on_conflict == "replace":
                replaced = len({c[0] for c in conflicts})
                cur.execute(f"INSERT INTO runs_replaced SELECT {', '.join(cols)}, seq, run_key, ? FROM runs "
                            "WHERE seq IN (SELECT seq FROM _match WHERE diff <> '')", [batch_id])
                cur.execute("DELETE FROM runs WHERE seq IN (SELECT seq FROM _match WHERE diff <> '')")
            elif conflicts:
                skipped = len({c[0] for c in conflicts})
            cur.execute("CREATE TEMP TABLE _new AS SELECT min(c._ord) AS _ord FROM _cand c WHERE NOT EXISTS "
                        "(SELECT 1 FROM _match m WHERE m._ord = c._ord AND (m.diff = '' OR ? <> 'replace')) "
                        "AND c.run_id NOT IN (SELECT run_id FROM runs) GROUP BY c.run_id", [on_conflict])
            seq0 = cur.execute("SELECT coalesce(max(seq), -1) + 1 FROM runs").fetchall()[0][0]
            selected = ", ".join(f"i.{c}" for c in cols)
            cur.execute(f"INSERT INTO runs ({', '.join(cols)}, seq, run_key) SELECT {selected}, ? + i._ord, i.run_key "
                        "FROM _in i JOIN _new n ON n._ord = i._ord", [seq0])
            added = cur.execute("SELECT count(*) FROM _new").fetchall()[0][0]
            if added:
                self._ensure_sources(cur, prepared, batch_id)
                self._insert_frame(cur, "batches", pd.DataFrame([{
                    "batch_id": batch_id, "kind": kind, "source_id": prepared.source_id,
                    "file_name": prepared.file_name, "file_sha256": prepared.file_sha256,
                    "format": prepared.format, "imported_at": now, "n_runs": int(added), "n_gpus": 0,
                    "n_llms": 0, "notes": "; ".join(prepared.warnings), "added_by": added_by or backends.cli_actor()}]))
            prior = None
            if prepared.file_sha256:
                earlier = cur.execute("SELECT batch_id FROM batches WHERE file_sha256 = ? AND batch_id <> ? "
                                      "ORDER BY imported_at LIMIT 1", [prepared.file_sha256, batch_id]).fetchall()
                prior = earlier[0][0] if earlier else None
        return {"total": int(total), "distinct": int(distinct), "added": int(added), "replaced": replaced,
                "skipped": skipped, "in_store": int(distinct) - int(added) - skipped, "prior": prior}

    def _ensure_sources(self, cur, prepared: PreparedImport, batch_id: str) -> None:
        used = cur.execute("SELECT DISTINCT source_id, license FROM runs WHERE batch_id = ?", [batch_id]).fetchall()
        known = {r[0] for r in cur.execute("SELECT source_id FROM sources").fetchall()}
        attributions = dict(prepared.attributions)
        rows = []
        for source_id, license_ in used:
            if source_id in known or source_id in {r["source_id"] for r in rows}:
                continue
            info = SOURCES.get(source_id, {})
            rows.append({"source_id": source_id, "name": info.get("name", source_id), "url": info.get("url", ""),
                         "license": license_ or info.get("license"),
                         "attribution": attributions.get(source_id) or info.get("attribution", "stated by uploader"),
                         "notes": f"first uploaded in {prepared.file_name}", "batch_id": batch_id})
        if rows:
            self._insert_frame(cur, "sources", pd.DataFrame(rows))

    def add_gpu(self, gpu: dict, added_by: str | None = None) -> str:
        """Add a user-defined GPU (one catalog row); returns its batch id."""
        return self._add_catalog_row("gpus", "custom_gpu", gpu, added_by)

    def add_llm(self, llm: dict, added_by: str | None = None) -> str:
        """Add a user-defined LLM (one catalog row); returns its batch id."""
        return self._add_catalog_row("llms", "custom_llm", llm, added_by)

    @_retried
    def _add_catalog_row(self, table: str, kind: str, row: dict, added_by: str | None = None) -> str:
        key = _KEYS[table]
        now = datetime.now(UTC).replace(tzinfo=None)
        batch_id = f"{kind}-{now:%Y%m%dT%H%M%S%f}"
        record = dict(row, user_defined=True, batch_id=batch_id)
        with self._transaction() as cur:
            exists = cur.execute(f"SELECT count(*) FROM {table} WHERE {key} = ?", [record[key]]).fetchall()[0][0]
            if exists:
                raise WattGPUError(f"{key} {record[key]!r} already exists; choose another id")
            self._insert_frame(cur, table, pd.DataFrame([record]))
            self._insert_frame(cur, "batches", pd.DataFrame([{
                "batch_id": batch_id, "kind": kind, "source_id": "user", "file_name": None, "file_sha256": None,
                "format": kind, "imported_at": now, "n_runs": 0, "n_gpus": int(table == "gpus"),
                "n_llms": int(table == "llms"), "notes": f"{key}={record[key]}",
                "added_by": added_by or backends.cli_actor()}]))
        return batch_id

    @_retried
    def remove_batch(self, batch_id: str) -> dict:
        """Undo one upload or custom entry, returning the store exactly to its state before it."""
        with self._transaction("remove-batch") as cur:
            row = cur.execute("SELECT kind FROM batches WHERE batch_id = ?", [batch_id]).fetchall()
            if not row:
                raise WattGPUError(f"no batch {batch_id!r}")
            if row[0][0] == "seed":
                raise WattGPUError("seed data cannot be removed; rebuild the store instead")
            for table, key in (("gpus", "gpu_id"), ("llms", "llm_id")):
                used = cur.execute(
                    f"SELECT count(*) FROM runs WHERE batch_id <> ? AND {key} IN "
                    f"(SELECT {key} FROM {table} WHERE batch_id = ?)", [batch_id, batch_id]).fetchall()[0][0]
                if used:
                    raise WattGPUError(
                        f"batch {batch_id} added a {table[:-1].upper()} that {used} run(s) from other uploads use; "
                        "remove those uploads first")
            # A source this batch introduced stays if runs of other uploads use it; it then belongs to the
            # earliest of them, as if that upload had introduced it.
            for (source_id,) in cur.execute("SELECT source_id FROM sources WHERE batch_id = ?", [batch_id]).fetchall():
                heir = cur.execute(
                    "SELECT r.batch_id FROM runs r JOIN batches b ON b.batch_id = r.batch_id WHERE r.source_id = ? "
                    "AND r.batch_id <> ? ORDER BY b.imported_at, b.batch_id LIMIT 1", [source_id, batch_id]).fetchall()
                if heir:
                    heir_id = heir[0][0]
                    file_name = cur.execute("SELECT file_name FROM batches WHERE batch_id = ?",
                                            [heir_id]).fetchall()[0][0]
                    cur.execute("UPDATE sources SET batch_id = ?, notes = ? WHERE source_id = ?",
                                [heir_id, f"first uploaded in {file_name}", source_id])
            removed = {}
            for table in ("runs", "gpus", "llms", "sources"):
                removed[table] = cur.execute(f"SELECT count(*) FROM {table} WHERE batch_id = ?",
                                             [batch_id]).fetchall()[0][0]
                cur.execute(f"DELETE FROM {table} WHERE batch_id = ?", [batch_id])
            pause_point("remove-batch:deleted")
            # Runs this batch replaced come back; its own runs that a later upload replaced go with it.
            cols = ", ".join(names(RUN_COLUMNS))
            restored = cur.execute(f"INSERT INTO runs ({cols}, seq, run_key) SELECT {cols}, seq, run_key FROM "
                                   "runs_replaced WHERE replaced_by = ?", [batch_id]).fetchall()[0][0]
            cur.execute("DELETE FROM runs_replaced WHERE replaced_by = ? OR batch_id = ?", [batch_id, batch_id])
            if restored:
                removed["restored_runs"] = restored
            cur.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
        return {k: int(v) for k, v in removed.items()}
