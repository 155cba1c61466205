"""`coach optimize`: one config, one optimiser object (as TRL's trainers are built).

The search is GEPA's (reflective prompt evolution with a Pareto front over
personas): it evaluates a candidate on a minibatch of training personas,
shows the reflection model the conversations and the judge's reasons for every
failed criterion, takes the rewritten prompt it proposes, and keeps it when it
scores better, tracking on the validation personas which candidate is best
for whom. Everything it learns is stored (see `state.optimization_records`);
GEPA's own state lives in the run's folder, so a killed optimisation resumes
where it stopped, and stored rollouts are read back instead of paid again.
"""

from __future__ import annotations

import difflib
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import yaml
from pydantic import BaseModel, Field

from actors.assessment.assessor import due_criteria
from actors.backends.types import Message
from actors.pack.domain_pack import DomainPack
from actors.pack.loader import load_pack
from actors.safety import load_safety_net
from state import optimization_records as records
from state.errors import CoachError
from state.store import Store

from .adapter import RubricAdapter, Scored, candidate_key
from .components import COMPONENTS, seed_candidate
from .progress import persona_ids
from .rollout import Persona, rollout

Report = Callable[[str], None]

REFLECTION_MAX_TOKENS = 2048


class OptimizeConfig(BaseModel):
    """An optimisation's settings, stored whole with its run (a resume restores them)."""

    components: tuple[str, ...] = ("assistant",)
    personas: int = Field(default=6, ge=2, description="simulated people, split into train and validation")
    validation: int = Field(default=2, ge=1, description="how many of them are the validation set")
    exchanges: int = Field(default=3, ge=1)
    max_tokens: int = Field(default=256, ge=8, description="per user message and per reply")
    max_calls: int = Field(default=24, ge=1, description="the budget: conversations generated and judged")
    minibatch: int = Field(default=2, ge=1, description="training personas per reflection step")
    seed: int = 0

    def problems(self) -> list[str]:
        found = [
            f"--component {c!r}: choose from {', '.join(COMPONENTS)}" for c in self.components if c not in COMPONENTS
        ]
        if self.validation >= self.personas:
            found.append(f"--validation {self.validation} leaves no training persona of {self.personas}")
        return found


@dataclass(frozen=True)
class Estimate:
    rollouts: int
    reflections: int
    model_calls: int
    judge_calls: int
    prompt_tokens: int
    seconds_per_call: float | None = None

    def lines(self) -> list[str]:
        lines = [
            f"budget: {self.rollouts} conversations judged, about {self.reflections} reflections",
            f"cost: about {self.model_calls} model calls ({self.judge_calls} of them judge calls), "
            f"about {self.prompt_tokens:,} prompt tokens",
        ]
        if self.seconds_per_call:
            low = self.model_calls * self.seconds_per_call
            lines.append(f"time: about {_duration(low)} to {_duration(low * 4)} at this machine's pace")
        return lines


@dataclass
class OptimizeResult:
    run_id: str
    candidates: list[dict[str, str]]
    scores: list[float]
    front: list[int]
    best: int
    rollouts: int
    failures: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_candidate(self) -> dict[str, str]:
        return self.candidates[self.best]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def personas(config: OptimizeConfig) -> tuple[list[Persona], list[Persona]]:
    """(train, validation): the same simulated people for every candidate, from the seed."""
    train, val = persona_ids(config.personas, config.validation)
    people = [
        Persona(pid, zlib.crc32(f"optimize:{config.seed}:{i}".encode()) & 0x7FFFFFFF)
        for i, pid in enumerate(val + train)
    ]
    return people[config.validation :], people[: config.validation]


def estimate(pack: DomainPack, config: OptimizeConfig, judges: int = 1) -> Estimate:
    """What the budget will cost, from the shape of a rollout (before any model is asked)."""
    judge_calls = len(due_criteria(pack.rubric, config.exchanges)) * judges
    per_rollout = 1 + 2 * config.exchanges + judge_calls
    reflections = max(0, config.max_calls - config.validation) // (2 * config.minibatch)
    transcript = 2 * config.exchanges * config.max_tokens
    prompt_tokens = config.max_calls * (judge_calls * (700 + transcript) + 2 * config.exchanges * (900 + transcript))
    prompt_tokens += reflections * (1500 + config.minibatch * transcript)
    return Estimate(
        config.max_calls,
        reflections,
        config.max_calls * per_rollout + reflections,
        config.max_calls * judge_calls,
        prompt_tokens,
    )


class _Log:
    """GEPA's log lines, handed to the caller (the CLI prints them; the app would show them)."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def log(self, message: str) -> None:
        for line in str(message).splitlines():
            if line.strip():
                self.report(line)


class PromptOptimizer:
    def __init__(
        self,
        store: Store,
        router,
        pack: DomainPack,
        config: OptimizeConfig,
        *,
        runs_root: Path,
        report: Report = lambda line: None,
    ) -> None:
        problems = config.problems()
        if problems:
            raise CoachError("; ".join(problems))
        self.store, self.router, self.pack, self.config = store, router, pack, config
        self.runs_root = Path(runs_root)
        self.report = report

    # --- before starting ---------------------------------------------------------------------

    async def estimate(self) -> Estimate:
        """The cost, and the time at this machine's pace (one short call measured)."""
        judges = len(self.router.backends_for("judge"))
        found = estimate(self.pack, self.config, judges)
        started = time.perf_counter()
        await self.router.ask("assistant", [Message(role="user", content="Say hello.")], max_tokens=16, temperature=0)
        return Estimate(**{**found.__dict__, "seconds_per_call": time.perf_counter() - started})

    # --- the run -------------------------------------------------------------------------------

    async def run(self, *, resume: str | None = None) -> OptimizeResult:
        run_id, config = self._open(resume)
        self.config = config
        # The crisis net marks the judge's transcripts; it loads once, off the event loop, before any rollout.
        await anyio.to_thread.run_sync(load_safety_net, self.pack)
        train, val = personas(config)
        known = {
            (p["candidate"], p["persona"]): Scored.from_payload(p)
            for p in records.events(self.store, run_id, "OptimizeRollout")
        }
        adapter = RubricAdapter(
            self.pack,
            lambda pack, persona: rollout(
                self.router, pack, persona, exchanges=config.exchanges, max_tokens=config.max_tokens
            ),
            known=known,
            on_candidate=lambda key, cand: self._candidate(run_id, key, cand),
            on_scored=lambda scored: self._scored(run_id, scored),
        )
        gepa_dir = self.runs_root / run_id / "gepa"
        seed = seed_candidate(self.pack, config.components)

        def search():
            import gepa

            return gepa.optimize(
                seed_candidate=seed,
                trainset=train,
                valset=val,
                adapter=adapter,
                reflection_lm=self._reflection_lm,
                max_metric_calls=config.max_calls,
                reflection_minibatch_size=config.minibatch,
                run_dir=str(gepa_dir),
                logger=_Log(self.report),
                seed=config.seed,
                display_progress_bar=False,
                raise_on_exception=True,
            )

        try:
            result = await anyio.to_thread.run_sync(search)
        except BaseException as err:
            status = (
                "interrupted" if isinstance(err, (KeyboardInterrupt, anyio.get_cancelled_exc_class())) else "failed"
            )
            records.update_run(self.store, run_id, status=status, error=f"{type(err).__name__}: {err}"[:2000])
            raise
        front = sorted({i for best in result.per_val_instance_best_candidates.values() for i in best})
        outcome = OptimizeResult(
            run_id,
            [dict(c) for c in result.candidates],
            [float(s) for s in result.val_aggregate_scores],
            front,
            int(result.best_idx),
            len(adapter.known),
            adapter.failures,
        )
        keys = [candidate_key(c) for c in outcome.candidates]
        records.add_event(
            self.store,
            run_id,
            "OptimizeFinished",
            {"candidates": keys, "scores": outcome.scores, "front": front, "best": outcome.best},
        )
        records.update_run(
            self.store, run_id, status="finished", best=outcome.best_candidate, best_score=outcome.scores[outcome.best]
        )
        return outcome

    def _open(self, resume: str | None) -> tuple[str, OptimizeConfig]:
        if resume:
            run = records.get_run(self.store, resume)
            if run.status == "finished":
                raise CoachError(f"optimisation {run.id} already finished; start a new one without --resume")
            config = OptimizeConfig.model_validate(run.config["settings"])
            records.update_run(self.store, run.id, status="running")
            self.report(f"resuming optimisation {run.id}")
            return run.id, config
        run_id = time.strftime("opt-%Y%m%d-%H%M%S-") + f"{zlib.crc32(str(time.time_ns()).encode()) & 0xFFFF:04x}"
        records.create_run(
            self.store,
            run_id,
            {
                "settings": self.config.model_dump(mode="json"),
                "pack": self.pack.name,
                "run_dir": str(self.runs_root / run_id),
            },
        )
        return run_id, self.config

    def _candidate(self, run_id: str, key: str, candidate: dict[str, str]) -> None:
        records.add_event(self.store, run_id, "OptimizeCandidate", {"key": key, "texts": candidate})
        self.report(f"candidate {key}: evaluating")

    def _scored(self, run_id: str, scored: Scored) -> None:
        records.add_event(self.store, run_id, "OptimizeRollout", scored.payload())
        failed = f", failed {', '.join(scored.failed)}" if scored.failed else ""
        self.report(f"candidate {scored.candidate} × persona {scored.persona}: score {scored.score:.2f}{failed}")

    def _reflection_lm(self, prompt: str | list[dict[str, Any]]) -> str:
        """GEPA's reflection model: the `reflector` role, asked from GEPA's thread."""
        messages = (
            [Message(role="user", content=prompt)]
            if isinstance(prompt, str)
            else [Message(role=m["role"], content=m["content"]) for m in prompt]
        )

        async def ask() -> str:
            reply = await self.router.ask("reflector", messages, max_tokens=REFLECTION_MAX_TOKENS, temperature=0.7)
            return reply.text

        return anyio.from_thread.run(ask)


# --- writing the best candidate as a new version of the pack ----------------------------------------


def prompt_diff(pack: DomainPack, candidate: dict[str, str]) -> str:
    """A unified diff of each changed component against the pack's current text."""
    current = seed_candidate(pack, tuple(candidate))
    parts = []
    for name, text in candidate.items():
        if text != current[name]:
            parts += difflib.unified_diff(
                current[name].splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{name} (current)",
                tofile=f"{name} (optimised)",
            )
    return "".join(parts)


def write_pack(pack: DomainPack, candidate: dict[str, str], dest: Path) -> Path:
    """A new pack folder at `dest`: the pack whole, with the candidate's texts. The old one is untouched.

    A pack may keep parts outside its folder (`prompts_dir: ../prompts`); the
    copy brings them inside, so it stands alone, and it is loaded to prove it.
    """
    if dest.exists():
        raise CoachError(f"{dest} already exists: choose another place for the new pack version")
    shutil.copytree(pack.root, dest)
    manifest_file = dest / "pack.yaml"
    manifest = yaml.safe_load(manifest_file.read_text())
    for key in ("prompts_dir", "rubric_doc", "system_prompt", "input_taxonomy", "flaw_taxonomy", "rubric"):
        value = manifest.get(key) or getattr(pack.manifest, key, None)
        if not value or not str(value).startswith(".."):
            continue
        source = (pack.root / value).resolve()
        local = source.name
        if source.is_dir():
            shutil.copytree(source, dest / local, dirs_exist_ok=True)
        else:
            shutil.copy2(source, dest / local)
        manifest[key] = local
    manifest["description"] = (manifest.get("description") or "").strip() + " (prompts optimised by coach optimize)"
    manifest_file.write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    for name, text in candidate.items():
        if name == "system_prompt":
            target = dest / manifest.get("system_prompt", pack.manifest.system_prompt)
        else:
            target = dest / manifest.get("prompts_dir", pack.manifest.prompts_dir) / f"{name}.md"
        target.write_text(text)
    load_pack(dest)  # the new version must load like the old
    return dest
