"""Model files on disk, written so that a crash never leaves half a model set.

A model set is several files in one folder (``<set>_<target>.json`` per target and ``<set>.meta.json``). Writers
use :func:`atomic_model_set`: the files are written to a private staging folder beside the set; when all are
written, a journal naming the staging folder is put in place (one atomic rename: the commit point), the files are
renamed into place (metadata last) and the journal is removed. Readers wrap their reads in :func:`reading`, which
first finishes any commit a crashed writer left behind (the journal says which files to move) and then holds a
shared lock, so they never see one target of the new set beside another of the old one. A crash before the commit
point leaves the old set untouched (the staging folder is removed later); a crash after it is rolled forward by the
next reader or writer. ``kill -9`` at any moment therefore leaves every set whole: all old or all new.

Locks are ``flock`` on ``<folder>/.models.lock`` (POSIX); where the folder cannot hold a lock file, reads go ahead
unlocked (a read-only checkout is never written to).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .faults import pause_point

try:  # pragma: no cover - the platform decides
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

_LOCK_FILE = ".models.lock"
_JOURNAL_PREFIX = ".commit-"
_STAGING_PREFIX = ".staging-"


@contextmanager
def _locked(folder: Path, exclusive: bool) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only folder: nobody writes models here
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _meta_last(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (n.endswith(".meta.json"), n))


def _roll_forward(folder: Path) -> None:
    """Finish every commit a crashed writer left (journal present); drop staging folders of dead writers. Call with
    the exclusive lock held."""
    for journal in sorted(folder.glob(_JOURNAL_PREFIX + "*")):
        try:
            record = json.loads(journal.read_text())
            staging = folder / record["staging"]
            files = list(record["files"])
        except (OSError, ValueError, KeyError, TypeError):
            journal.unlink(missing_ok=True)  # written by os.replace: never partial; unreadable means foreign
            continue
        for name in _meta_last(files):
            src = staging / name
            if src.exists():
                os.replace(src, folder / name)
        journal.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    for staging in folder.glob(_STAGING_PREFIX + "*"):
        pid = staging.name[len(_STAGING_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def settle(folder: Path | str) -> None:
    """Finish a crashed writer's commit in ``folder``, if any (cheap when there is none)."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.glob(_JOURNAL_PREFIX + "*")):
        return
    with _locked(folder, exclusive=True):
        _roll_forward(folder)


@contextmanager
def reading(folder: Path | str) -> Iterator[None]:
    """Hold while reading a model set's files: no commit swaps files meanwhile, and none is left half done."""
    folder = Path(folder)
    settle(folder)
    if not folder.is_dir():
        yield
        return
    with _locked(folder, exclusive=False):
        yield


@contextmanager
def atomic_model_set(models_dir: Path | str, name: str) -> Iterator[Path]:
    """A staging folder to write model set ``name``'s files into (final file names, flat); on a clean exit they
    replace the set's files in ``models_dir`` together, on an exception nothing changes.

    Example::

        with atomic_model_set(models_dir, "plus") as staging:
            (staging / "plus_power.json").write_text(...)
            (staging / "plus.meta.json").write_text(...)
    """
    folder = Path(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f"{_STAGING_PREFIX}{os.getpid()}-{name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        files = [p.name for p in staging.iterdir() if p.is_file()]
        pause_point("models:written")
        with _locked(folder, exclusive=True):
            _roll_forward(folder)
            journal = folder / f"{_JOURNAL_PREFIX}{name}"
            pending = folder / f".{journal.name}.{uuid.uuid4().hex[:8]}"
            pending.write_text(json.dumps({"staging": staging.name, "files": files}))
            os.replace(pending, journal)  # the commit point
            pause_point("models:committed")
            for i, file_name in enumerate(_meta_last(files)):
                os.replace(staging / file_name, folder / file_name)
                if i == 0:
                    pause_point("models:renaming")
            journal.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(tmp: Path, folder: Path) -> None:
    """Put a fully written folder ``tmp`` in place of ``folder`` (two renames; a crash between them leaves no
    ``folder``, never a mix of old and new files)."""
    aside = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
    if folder.exists():
        os.replace(folder, aside)
    pause_point("models:folder-swap")
    os.replace(tmp, folder)
    shutil.rmtree(aside, ignore_errors=True)
