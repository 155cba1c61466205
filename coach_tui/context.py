"""What every subcommand and the app share: the resolved global options, opened lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click


@dataclass
class AppContext:
    """What every subcommand may need, resolved once from the global options."""

    workspace_option: str | None = None
    db_url: str | None = None
    domain_option: str | None = None
    create_workspace: bool = True
    """Whether opening the store may create a missing workspace.

    The app and the commands that create data may (`creates_workspace`); the
    `coach` group turns it off for every other subcommand, so a mistyped `-w`
    says "no workspace at PATH" instead of leaving an empty workspace behind.
    """
    _store: object = field(default=None, repr=False)

    @property
    def workspace(self) -> Path:
        from state.workspace import resolve_workspace

        return resolve_workspace(self.workspace_option)

    @property
    def store(self):
        if self._store is None:
            from state.workspace import open_store

            self._store = open_store(self.workspace, self.db_url, create=self.create_workspace)
        return self._store

    def pack(self, *, check_rubric_doc: bool = True):
        from actors.pack.loader import load_pack

        return load_pack(self.domain_option, check_rubric_doc=check_rubric_doc)


pass_app = click.make_pass_decorator(AppContext)

CREATES_WORKSPACE = "creates_workspace"
"""The attribute `creates_workspace` sets on a click command."""


def creates_workspace(command: click.Command) -> click.Command:
    """Mark a subcommand that creates data, and so may create the workspace it writes into (`coach run`)."""
    setattr(command, CREATES_WORKSPACE, True)
    return command


def may_create_workspace(command: click.Command | None) -> bool:
    """Whether `command` was marked with `creates_workspace` (a group is not: its subcommands only read)."""
    return bool(getattr(command, CREATES_WORKSPACE, False))
