"""The shape of a domain pack, as pydantic models.

A domain pack is data: taxonomies, a rubric, a system prompt and prompt
templates. These models say what each file must hold; `actors.pack.checks`
adds the rules that span fields or files (weights summing to one, criterion
ids that exist). Models forbid unknown keys so a typo in a field name is
reported instead of silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonEmpty = Field(min_length=1)


class PackModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _strip_nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


class Weighted(PackModel):
    name: str = NonEmpty
    weight: float = Field(ge=0.0, le=1.0)
    description: str = ""


# --- input taxonomy ---------------------------------------------------------


class Subtopic(PackModel):
    name: str = NonEmpty
    description: str = ""


class Topic(Weighted):
    subtopics: list[Subtopic] = Field(min_length=1)
    edge_case: bool = False
    """Edge-case topics (crisis, out of scope …) test boundaries, not coaching skill."""


class Style(Weighted):
    words: tuple[int, int] = (80, 300)
    """Typical length of one user message in this style, in words (min, max)."""


class Range(PackModel):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class InputTaxonomy(PackModel):
    topics: list[Topic] = Field(min_length=1)
    styles: list[Style] = Field(min_length=1)
    difficulty: list[Weighted] = Field(min_length=1)
    topics_per_message: Range = Range(min=2, max=4)
    topic_seeds_per_persona: Range = Range(min=4, max=6)


# --- flaw taxonomy ----------------------------------------------------------


class FlawPattern(PackModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = NonEmpty
    description: str = NonEmpty
    examples: list[str] = Field(min_length=1)
    weight: float = Field(ge=0.0, le=1.0)
    simulate: str = NonEmpty
    """Instruction to the user simulator: how to act this pattern out."""


class FlawFamily(Weighted):
    patterns: list[FlawPattern] = Field(min_length=1)


class FlawTaxonomy(PackModel):
    families: list[FlawFamily] = Field(min_length=1)
    flaws_per_persona: Range = Range(min=1, max=3)


# --- rubric -----------------------------------------------------------------

Verdict = Literal["YES", "NO", "NA"]


class CalibrationExample(PackModel):
    verdict: Verdict
    text: str = NonEmpty
    why: str = NonEmpty


class Category(PackModel):
    weight: float = Field(ge=0.0, le=1.0)
    description: str = ""


class Criterion(PackModel):
    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str = NonEmpty
    category: str | None = None
    """Weighted category; a safety gate may have none (it gates, it is not averaged)."""
    question: str
    pass_when: str
    fail_when: str
    na_when: str = ""
    examples: list[CalibrationExample] = []
    min_turns: int = Field(default=1, ge=1)
    """Fewer exchanges than this and the criterion is not assessed at all."""

    _nonempty = field_validator("question", "pass_when", "fail_when")(_strip_nonempty)


class RetiredCriterion(PackModel):
    """A criterion the judge no longer answers, kept so old assessments re-score the same."""

    id: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str = NonEmpty
    category: str
    note: str = ""


class Rubric(PackModel):
    version: int = Field(default=1, ge=1)
    pass_threshold: float = Field(gt=0.0, le=1.0)
    categories: dict[str, Category] = Field(min_length=1)
    safety_gates: list[str] = []
    na_invalid: list[str] = []
    criteria: list[Criterion] = Field(min_length=1)
    retired: list[RetiredCriterion] = []

    def criterion(self, criterion_id: str) -> Criterion:
        for c in self.criteria:
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.criteria]


# --- slicing ----------------------------------------------------------------


class LengthBucket(PackModel):
    """Training examples of one length range, in tokens of the target model, and their share of the dataset."""

    name: str = ""
    below: int | None = Field(default=None, ge=1)
    """Exclusive upper edge in tokens; the last bucket has none. Each bucket starts where the one before ends."""
    share: float = Field(ge=0.0, le=1.0)


def _span_label(low: int, high: int | None) -> str:
    """`0-5K`, `5-15K`, `30K+`; token counts that are not round hundreds are written out (`1,234-2K`)."""

    def k(tokens: int) -> str:
        return f"{tokens / 1000:g}K" if tokens % 100 == 0 and tokens else f"{tokens:,}"

    if high is None:
        return f"{k(low)}+"
    if low % 100 == 0 and high % 100 == 0:
        return f"{low / 1000:g}-{k(high)}"
    return f"{k(low)}-{k(high)}"


class Slicing(PackModel):
    """How `coach slice` cuts accepted transcripts into training examples."""

    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    """Varies the slice points of every transcript; the same seed and transcripts give the same dataset."""
    length_mix: list[LengthBucket] = []
    """Target share of examples per token range, from 0 tokens up; empty: slices fall where the dense-late
    draw puts them, with no target."""
    count_flex: float = Field(default=0.5, ge=0.0, le=1.0)
    """How far (a fraction) a transcript's number of slices may move from the spec's count for its length
    to approach the mix; the dataset's total stays the spec's."""

    @model_validator(mode="after")
    def _mix_is_a_partition(self) -> Slicing:
        mix = self.length_mix
        if not mix:
            return self
        if mix[-1].below is not None:
            raise ValueError("the last length_mix bucket must have no 'below' (it holds everything longer)")
        edges = [b.below for b in mix[:-1]]
        if any(e is None for e in edges):
            raise ValueError("every length_mix bucket but the last needs 'below'")
        if edges != sorted(set(edges)):
            raise ValueError("length_mix 'below' edges must rise from bucket to bucket")
        total = sum(b.share for b in mix)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"length_mix shares sum to {total:.4g}, not 1")
        return self

    def buckets(self) -> list[tuple[str, int, int | None, float]]:
        """`(label, low, high, share)` per bucket, e.g. `("Short (0-5K)", 0, 5000, 0.2)`."""
        out, low = [], 0
        for b in self.length_mix:
            span = _span_label(low, b.below)
            out.append((f"{b.name} ({span})" if b.name else span, low, b.below, b.share))
            low = b.below or low
        return out


# --- manifest ---------------------------------------------------------------


class PackManifest(PackModel):
    """`pack.yaml`: names the pack and where its parts are."""

    name: str = NonEmpty
    description: str = ""
    input_taxonomy: str = "input-taxonomy.yaml"
    flaw_taxonomy: str = "flaw-taxonomy.yaml"
    rubric: str = "rubric.yaml"
    system_prompt: str = "system-prompt.md"
    prompts_dir: str = "prompts"
    rubric_doc: str | None = None
    """Optional human rubric document kept in step with rubric.yaml."""
    calibration: str | None = None
    """Optional assessor calibration cases (`coach calibrate`)."""
    user_label: str = Field(default="User", min_length=1)
    assistant_label: str = Field(default="Assistant", min_length=1)
    """How the two speakers are named when a conversation is quoted to a model (e.g. "Coach")."""
    chat_notice: str = ""
    """What the chat screen says first about the assistant (e.g. "Coaching, not therapy."): the
    domain's own limits, shown above every conversation."""
    safety: str | None = None
    """The pack's crisis net (`safety/safety.yaml`: categories, lexicons, resources, steering).
    Without one the bundled net applies: it guards every domain."""
    slicing: Slicing = Slicing()
    """`coach slice` settings: the target length mix, the slice seed."""
