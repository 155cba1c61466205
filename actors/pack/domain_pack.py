"""A domain pack once loaded: every file read, validated and checked against the others.

Its own module, apart from the loader, because everything that uses a pack
(generation, judging, calibration, training) needs the type, while only the
loader needs the reading: code that checks a file belonging to the pack
(the calibration cases) can name the type without importing the loader that
calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .models import FlawTaxonomy, InputTaxonomy, PackManifest, Rubric


@dataclass(frozen=True)
class DomainPack:
    root: Path
    manifest: PackManifest
    input_taxonomy: InputTaxonomy
    flaw_taxonomy: FlawTaxonomy
    rubric: Rubric
    system_prompt: str
    prompts: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    def path(self, relative: str) -> Path:
        return (self.root / relative).resolve()
