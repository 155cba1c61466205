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
    _store: object = field(default=None, repr=False)

    @property
    def workspace(self) -> Path:
        from state.workspace import resolve_workspace

        return resolve_workspace(self.workspace_option)

    @property
    def store(self):
        if self._store is None:
            from state.workspace import open_store

            self._store = open_store(self.workspace, self.db_url)
        return self._store

    def pack(self, *, check_rubric_doc: bool = True):
        from actors.pack.loader import load_pack

        return load_pack(self.domain_option, check_rubric_doc=check_rubric_doc)


pass_app = click.make_pass_decorator(AppContext)
