"""The files coach ships beside its code, found the same way in a wheel and in a checkout.

The folders stay at the top of the repository (`config/`, `prompts/`,
`reference/`, `packs/`), where people edit them; `setup.py` maps each one into
this package (`coach_data.config`, …). Reading them through
`importlib.resources`, never through a path climbed up from some module's
`__file__`, is what lets an installed wheel and an editable install resolve the
same names. The folders stay siblings in both, so a pack's relative references
(`prompts_dir: ../prompts` in `config/pack.yaml`) hold in both.

Each folder carries an empty `__init__.py`: an editable install only maps
regular packages to folders outside this one.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from state.errors import CoachError

FOLDERS = ("config", "prompts", "reference", "packs")


class BundledDataMissing(CoachError):
    """A bundled folder is absent: the installation is damaged; reinstalling fixes it."""


def bundled_dir(name: str) -> Path:
    """The bundled folder `name` (one of `FOLDERS`) as a real directory.

    A real `Path` rather than a `Traversable`, because packs resolve relative
    references (`../prompts`) and tools copy whole folders. pip installs
    wheels unpacked, so the package always sits on the file system.
    """
    if name not in FOLDERS:
        raise ValueError(f"{name!r} is not a bundled folder; bundled: {', '.join(FOLDERS)}")
    try:
        folder = files(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        raise BundledDataMissing(f"coach's bundled {name}/ folder is not installed ({err}); reinstall coach") from err
    if not isinstance(folder, Path) or not folder.is_dir():
        raise BundledDataMissing(f"coach's bundled {name}/ folder is not on disk ({folder}); reinstall coach")
    return folder
