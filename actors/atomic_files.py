"""Files written whole or not at all, and no litter when a write is killed.

Exports, reports, training data and model files are written to a temporary
file in the same folder, flushed to the disk (fsync), and only then renamed
into place; the folder is fsynced after the rename so the new name survives
a power cut too. A crash or a kill therefore never leaves half a file where a
reader expects a whole one.

A kill does leave the temporary file, and a killed `slice` once left 127 MB
of them. So temporary names say who made them, `.NAME.coach-<pid>-<tag>.tmp`,
and the first write into a folder in a process sweeps the folder of stale
ones: those whose process is gone, or older than `STALE_AFTER` whatever the
pid says (pids are reused, and a pid on a shared disk may be another
machine's). `coach doctor` sweeps the whole workspace the same way. The
previous release's anonymous names (`.NAME.x1y2z3w4.tmp`) are swept once
they are older than `STALE_AFTER`.

Any OS error while writing (a full disk, a read-only folder) becomes one
`CoachError` naming the file, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from state.errors import CoachError

STALE_AFTER = 6 * 3600.0  # seconds; no single write of ours takes this long
_OURS = re.compile(r"^\..+\.coach-(?P<pid>\d+)-[0-9a-f]+\.tmp$")
_LEGACY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
_swept: set[Path] = set()


@dataclass(frozen=True)
class SweptTemp:
    """A temporary file (or folder) that a killed write left and a sweep removed."""

    path: Path
    size: int


def temp_path(target: Path) -> Path:
    """A recognisable, unique temporary name beside `target`, for a write to be renamed into place."""
    return target.with_name(f".{target.name}.coach-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` whole or not at all (see the module docstring)."""
    with atomic_writer(path) as fh:
        fh.write(text)


def write_json_atomic(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_lines_atomic(path: Path, lines: Iterable[str]) -> None:
    """Stream lines to the file, whole or not at all.

    Streams rather than building one string: a full run's training file can be
    hundreds of MB. An error from the lines' producer removes the temporary
    file and propagates unchanged.
    """
    with atomic_writer(path, newline="\n") as fh:
        for line in lines:
            fh.write(line)
            fh.write("\n")


@contextlib.contextmanager
def atomic_writer(path: Path, *, binary: bool = False, newline: str | None = None) -> Iterator[IO]:
    """An open temporary file that replaces `path` when the block ends without an error."""
    path = Path(path)
    tmp = prepare_temp(path)
    try:
        with _open_or_explain(tmp, path, binary=binary, newline=newline) as fh:
            yield fh
            _explained(path, fh.flush)
            _explained(path, os.fsync, fh.fileno())
        _explained(path, os.replace, tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def publish(tmp: Path, target: Path) -> None:
    """Move a finished temporary file (written by other code, e.g. llama.cpp) into place, durably."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CoachError(f"cannot write {target}: {_reason(err)}") from None
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """A temporary folder that replaces the folder `target` when the block ends without an error.

    For outputs that are a folder of files (a model checkpoint). Files in it
    are not fsynced one by one; the rename is what makes the folder appear.
    """
    target = Path(target)
    tmp = prepare_temp(target)
    try:
        tmp.mkdir()
        yield tmp
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CoachError(f"cannot write {target}: {_reason(err)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def sweep_stale_temps(folder: Path, *, recursive: bool = False, now: float | None = None) -> list[SweptTemp]:
    """Remove the temporary files and folders that killed writes left in `folder`; say what went.

    Only names this module (or the previous release) makes are touched, and
    only stale ones: a live process's write in progress is left alone.
    """
    now = time.time() if now is None else now
    removed: list[SweptTemp] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and _is_stale(entry, now):
            size = _size(entry)
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue  # not ours to remove after all (permissions); doctor reports what stays
            removed.append(SweptTemp(Path(entry.path), size))
        elif recursive and entry.is_dir(follow_symlinks=False):
            removed.extend(sweep_stale_temps(Path(entry.path), recursive=True, now=now))
    return removed


def prepare_temp(path: Path) -> Path:
    """Make the folder, sweep it of stale temporary files (once per process), and name a temporary file.

    For writers that hand the name to other code (llama.cpp, save_pretrained)
    and finish with `publish`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CoachError(f"cannot write {path}: {_reason(err)}") from None
    folder = path.parent.resolve()
    if folder not in _swept:
        _swept.add(folder)
        sweep_stale_temps(folder)
    return temp_path(path)


@contextlib.contextmanager
def _open_or_explain(tmp: Path, path: Path, *, binary: bool, newline: str | None) -> Iterator[IO]:
    try:
        fh = open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8", newline=newline)  # noqa: SIM115
    except OSError as err:
        raise CoachError(f"cannot write {path}: {_reason(err)}") from None
    with fh:
        try:
            yield fh
        except OSError as err:
            raise CoachError(f"cannot write {path}: {_reason(err)}") from None


def _explained(path: Path, call, *args) -> None:
    try:
        call(*args)
    except OSError as err:
        raise CoachError(f"cannot write {path}: {_reason(err)}") from None


def _reason(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full (no space left on device); free some space and run it again"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exhausted; free some space and run it again"
    return err.strerror or str(err)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; some systems cannot open a folder, which is no error."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_stale(entry: os.DirEntry, now: float) -> bool:
    ours = _OURS.match(entry.name)
    if ours is None and _LEGACY.match(entry.name) is None:
        return False
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER:
        return True
    return ours is not None and not _alive(int(ours["pid"]))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a pid we cannot ask about: leave it
    return True


def _size(entry: os.DirEntry) -> int:
    try:
        if not entry.is_dir(follow_symlinks=False):
            return entry.stat(follow_symlinks=False).st_size
        return sum(p.stat().st_size for p in Path(entry.path).rglob("*") if p.is_file())
    except OSError:
        return 0
