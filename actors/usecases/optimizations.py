"""Optimising a pack's prompts (`coach optimize`), below both faces.

Opens the models of the run config, hands the search to
`actors.optimization.PromptOptimizer`, and writes the best candidate as a new
pack version when asked. The CLI parses options and prints; the app's
Optimize screen follows a run from the store (`optimization_runs`,
`optimization_snapshot`, `run_marker`), whichever process works it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from actors.optimization.optimizer import (
    Estimate,
    OptimizeConfig,
    OptimizeResult,
    PromptOptimizer,
    Report,
    prompt_diff,
    write_pack,
)
from actors.optimization.progress import (
    CandidateRow,
    OptimizationSnapshot,
    OptimizeRunInfo,
    optimization_runs,
    optimization_snapshot,
)
from actors.pack.domain_pack import DomainPack
from state.run_index import RunMarker, run_marker
from state.store import Store

__all__ = [
    "CandidateRow",
    "Estimate",
    "OptimizationSession",
    "OptimizationSnapshot",
    "OptimizeConfig",
    "OptimizeResult",
    "OptimizeRunInfo",
    "RunMarker",
    "open_optimization",
    "optimization_runs",
    "optimization_snapshot",
    "run_marker",
]


@dataclass
class OptimizationSession:
    optimizer: PromptOptimizer
    pack: DomainPack
    workspace: Path

    async def estimate(self) -> Estimate:
        return await self.optimizer.estimate()

    async def run(self, resume: str | None = None) -> OptimizeResult:
        return await self.optimizer.run(resume=resume)

    def diff(self, outcome: OptimizeResult) -> str:
        """The best candidate against the pack's current prompts ("" when they are the same)."""
        return prompt_diff(self.pack, outcome.best_candidate)

    def write(self, outcome: OptimizeResult, dest: Path | None = None) -> Path:
        """The best candidate as a new pack version (default: WORKSPACE/packs/PACK-RUN); the old pack stays."""
        target = dest or self.workspace / "packs" / f"{self.pack.name}-{outcome.run_id}"
        return write_pack(self.pack, outcome.best_candidate, target)


@asynccontextmanager
async def open_optimization(
    store: Store,
    pack: DomainPack,
    config: OptimizeConfig,
    *,
    workspace: Path,
    run_config_path: Path | None = None,
    report: Report = lambda line: None,
) -> AsyncIterator[OptimizationSession]:
    """An optimisation over the run config's models, closed (models released) on the way out."""
    from actors.backends.router import ModelRouter
    from actors.run_config import load_run_config

    router = ModelRouter.from_config(load_run_config(run_config_path))
    try:
        optimizer = PromptOptimizer(store, router, pack, config, runs_root=workspace / "optimize", report=report)
        yield OptimizationSession(optimizer, pack, workspace)
    finally:
        await router.aclose()
