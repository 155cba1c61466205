"""Files written whole or not at all: fsync before the rename, no litter after a killed write."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors import atomic_files
from actors.atomic_files import (
    STALE_AFTER,
    atomic_dir,
    prepare_temp,
    publish,
    sweep_stale_temps,
    write_json_atomic,
    write_lines_atomic,
    write_text_atomic,
)
from state.errors import CoachError

ROOT = Path(__file__).resolve().parent.parent


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    """The pid of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(autouse=True)
def fresh_sweeps(monkeypatch):
    """Each test sees the first write into a folder, as a new process would."""
    monkeypatch.setattr(atomic_files, "_swept", set())


def test_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path: Path, monkeypatch):
    calls: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.fstat(fd).st_mode)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", Path(b).name)), real_replace(a, b)))

    write_text_atomic(tmp_path / "report.md", "# hello\n")

    kinds = [(c[0], "dir" if c[0] == "fsync" and stat.S_ISDIR(c[1]) else c[1]) for c in calls]
    assert kinds[0][0] == "fsync" and kinds[0][1] != "dir"  # the file's data reached the disk…
    assert kinds[1] == ("replace", "report.md")  # …before its name changed…
    assert kinds[2] == ("fsync", "dir")  # …and the new name itself was made durable
    assert (tmp_path / "report.md").read_text() == "# hello\n"


def test_streamed_lines_are_fsynced_too(tmp_path: Path, monkeypatch):
    count = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (count.append(fd), real_fsync(fd)))
    write_lines_atomic(tmp_path / "data.jsonl", (f'{{"n":{i}}}' for i in range(1000)))
    assert len(count) == 2  # the file, then the folder
    assert (tmp_path / "data.jsonl").read_text().count("\n") == 1000
    assert temps(tmp_path) == []


def test_a_killed_write_is_cleaned_up_by_the_next_write(tmp_path: Path):
    """A real kill -9 in the middle of streaming a file, then an ordinary write into the same folder."""
    out = tmp_path / "training_data.jsonl"
    out.write_text("the previous file\n")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time\n"
                "from pathlib import Path\n"
                "from actors.atomic_files import write_lines_atomic\n"
                "def lines():\n"
                "    for i in range(100_000):\n"
                "        if i == 5000:\n"
                "            print('half-way', flush=True)\n"
                "            time.sleep(60)\n"
                "        yield 'x' * 100\n"
                "write_lines_atomic(Path(sys.argv[1]), lines())\n"
            ),
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "half-way"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    [left] = temps(tmp_path)
    assert left.startswith(".training_data.jsonl.coach-") and f"-{writer.pid}-" in left
    assert out.read_text() == "the previous file\n"  # the reader never saw half a file

    write_json_atomic(tmp_path / "report.json", {"ok": True})

    assert temps(tmp_path) == []
    assert out.read_text() == "the previous file\n"


def test_a_live_writers_file_is_left_alone(tmp_path: Path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".big.jsonl.coach-{sleeper.pid}-0a1b2c3d.tmp"
        live.write_text("in progress")
        mine = prepare_temp(tmp_path / "other.json")  # this process's own, as a thread would hold it
        mine.write_text("in progress")
        dead = tmp_path / f".big.jsonl.coach-{dead_pid()}-0a1b2c3d.tmp"
        dead.write_text("abandoned")
        removed = sweep_stale_temps(tmp_path)
        assert [r.path.name for r in removed] == [dead.name] and removed[0].size == len("abandoned")
        assert live.exists() and mine.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_old_leftovers_go_whatever_their_pid_and_the_previous_releases_names_too(tmp_path: Path):
    old = time.time() - STALE_AFTER - 60
    ours_but_old = tmp_path / f".a.json.coach-{os.getpid()}-0a1b2c3d.tmp"
    legacy_old = tmp_path / ".training_data.jsonl.k3j_x9q2.tmp"  # tempfile.mkstemp's name, before this release
    legacy_new = tmp_path / ".training_data.jsonl.a8d7f6e5.tmp"
    stranger = tmp_path / ".notes.tmp"  # not a name we make: never touched
    for p in (ours_but_old, legacy_old, legacy_new, stranger):
        p.write_text("x")
    for p in (ours_but_old, legacy_old, stranger):
        os.utime(p, (old, old))
    folder_left = tmp_path / f".gemma3-270m-hf-1.tmp.coach-{dead_pid()}-0a1b2c3d.tmp"  # a killed checkpoint folder
    (folder_left / "sub").mkdir(parents=True)
    (folder_left / "sub" / "model.safetensors").write_bytes(b"\0" * 4096)

    removed = {r.path.name: r.size for r in sweep_stale_temps(tmp_path)}

    assert removed == {ours_but_old.name: 1, legacy_old.name: 1, folder_left.name: 4096}
    assert temps(tmp_path) == sorted([legacy_new.name, stranger.name])


def test_recursive_sweep_reaches_subfolders(tmp_path: Path):
    deep = tmp_path / "exports" / "run-1"
    deep.mkdir(parents=True)
    (deep / f".x.jsonl.coach-{dead_pid()}-0a1b.tmp").write_text("abandoned")
    assert sweep_stale_temps(tmp_path) == []
    assert len(sweep_stale_temps(tmp_path, recursive=True)) == 1
    assert temps(deep) == []


def test_a_full_disk_is_one_clear_message_and_the_old_file_stays(tmp_path: Path, monkeypatch):
    path = tmp_path / "report.md"
    path.write_text("yesterday's report\n")

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CoachError, match=r"cannot write .*report\.md: the disk is full"):
        write_text_atomic(path, "today's report\n" * 1000)
    assert path.read_text() == "yesterday's report\n"
    assert temps(tmp_path) == []


def test_an_error_from_the_lines_producer_propagates_and_leaves_nothing(tmp_path: Path):
    def lines():
        yield "one"
        raise ValueError("the producer broke")

    with pytest.raises(ValueError, match="the producer broke"):
        write_lines_atomic(tmp_path / "data.jsonl", lines())
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_one_clear_message(tmp_path: Path):
    blocker = tmp_path / "exports"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(CoachError, match=r"cannot write .*exports/report\.md"):
        write_text_atomic(blocker / "report.md", "x")


def test_publish_and_atomic_dir(tmp_path: Path):
    tmp = prepare_temp(tmp_path / "model.gguf")
    tmp.write_bytes(b"GGUF")
    publish(tmp, tmp_path / "model.gguf")
    assert (tmp_path / "model.gguf").read_bytes() == b"GGUF" and temps(tmp_path) == []

    target = tmp_path / "checkpoint"
    with atomic_dir(target) as folder:
        (folder / "config.json").write_text("{}")
    assert (target / "config.json").exists()
    with pytest.raises(RuntimeError), atomic_dir(target) as folder:
        (folder / "config.json").write_text("half")
        raise RuntimeError("killed mid-save")
    assert (target / "config.json").read_text() == "{}" and temps(tmp_path) == []
