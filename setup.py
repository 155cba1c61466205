"""Which packages the wheel holds; everything else about the build is in pyproject.toml.

This file exists for one thing pyproject.toml cannot say: find the code
packages *and* map the top-level data folders (`config/`, `prompts/`,
`reference/`, `packs/`) into the data package `coach_data`. Finding the code
keeps new subpackages in the wheel without anyone listing them.
"""

from __future__ import annotations

from setuptools import find_namespace_packages, setup

DATA_FOLDERS = ("config", "prompts", "reference", "packs")  # = coach_data.FOLDERS


def data_packages(folder: str) -> list[str]:
    """`coach_data.FOLDER` and its subfolders that Python could import (setuptools warns of any left out)."""
    below = find_namespace_packages(where=folder, exclude=["*__pycache__*"])
    return [
        f"coach_data.{folder}",
        *(f"coach_data.{folder}.{name}" for name in below if all(part.isidentifier() for part in name.split("."))),
    ]


setup(
    packages=[
        *find_namespace_packages(include=["coach_tui*", "actors*", "state*"], exclude=["*__pycache__*"]),
        "coach_data",
        *(name for folder in DATA_FOLDERS for name in data_packages(folder)),
    ],
    package_dir={f"coach_data.{folder}": folder for folder in DATA_FOLDERS},
)
