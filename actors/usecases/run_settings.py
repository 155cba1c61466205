"""Everything that defines a generation run, as one model stored whole with the run.

Why one model: the CLI and the app used to save a run's settings under
different keys (`review` here, `review_mode` there) and to rebuild the
supervisor's settings each in its own way, so a run resumed from the other
face lost its review mode and its token cap. Now both faces build a
`RunSettings`, the run stores `model_dump()` under `config["settings"]`, and
a resume reads the same model back, whichever face started the run. Runs
stored before this model existed are read through `from_stored`, which maps
both faces' old keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.errors import CoachError

from ..curation.curator import CurationSettings
from ..generation.run_plan import DEFAULT_LENGTHS
from ..supervisor import GenerationSettings

ReviewMode = Literal["auto", "review"]
SETTINGS_KEY = "settings"


class RunSettings(BaseModel):
    """A run's settings: what it plans, how it generates, how it curates, which backends it uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transcripts: int = Field(default=3, ge=1)
    seed: int | None = None
    """Decided when the run is planned (random when not given) and stored concrete."""
    lengths: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LENGTHS))
    mix: dict[str, float] | None = None
    """Share of each length class; None for the spec's default mix."""
    review_mode: ReviewMode = "auto"
    min_exchanges: int = Field(default=10, ge=1)
    max_tokens: int | None = Field(default=None, ge=16)
    """Cap on tokens per generated message (simulator, assistant and fixups); None for the defaults."""
    in_flight: int = Field(default=4, ge=1)
    run_config: str | None = None
    """The run config file (absolute path) naming the backends; None for the embedded default."""
    domain: str | None = None
    """The domain pack's name, checked on resume."""
    pilot: bool = False

    def generation(self) -> GenerationSettings:
        settings = GenerationSettings(in_flight=self.in_flight)
        if self.max_tokens:
            settings.max_tokens_user = min(settings.max_tokens_user, self.max_tokens)
            settings.max_tokens_assistant = min(settings.max_tokens_assistant, self.max_tokens)
        return settings

    def curation(self) -> CurationSettings:
        settings = CurationSettings(review_mode=self.review_mode, min_exchanges=self.min_exchanges)
        if self.max_tokens:
            settings.fixup_max_tokens = min(settings.fixup_max_tokens, self.max_tokens)
        return settings

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_pairs(text: str | None, option: str, cast: Callable[[str], Any]) -> dict:
    """`short=2,medium=4` → {"short": 2, "medium": 4}; a CoachError names the option and the bad part."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CoachError(f"{option}: expected name=value pairs separated by commas, got {part!r}")
        try:
            out[key.strip()] = cast(value)
        except ValueError:
            raise CoachError(f"{option}: {key.strip()}={value!r} is not a valid number") from None
        if out[key.strip()] < 0:
            raise CoachError(f"{option}: {key.strip()} must not be negative")
    return out


def from_stored(
    config: dict | None, *, seed: int | None = None, domain: str | None = None, run_id: str = "?"
) -> RunSettings:
    """The settings a run was started with, from its stored config, whichever face and version stored it."""
    config = config if isinstance(config, dict) else {}
    try:
        if isinstance(config.get(SETTINGS_KEY), dict):
            return RunSettings.model_validate(config[SETTINGS_KEY])
        return RunSettings.model_validate(_legacy(config, seed=seed, domain=domain))
    except (ValidationError, CoachError) as err:
        raise CoachError(f"run {run_id}: its stored settings cannot be read ({_first_line(err)})") from None


def _legacy(config: dict, *, seed: int | None, domain: str | None) -> dict:
    """Map the keys both faces stored before `RunSettings`: the CLI's and the app's."""
    review = config.get("review_mode")
    if review not in ("auto", "review"):
        review = "review" if config.get("review") else "auto"
    lengths = config.get("lengths")
    if isinstance(lengths, str) or lengths is None:  # the CLI kept the raw option text
        lengths = parse_pairs(lengths, "--lengths", int)
    mix = config.get("mix")
    if isinstance(mix, str):
        mix = parse_pairs(mix, "--mix", float)
    out: dict[str, Any] = {
        "lengths": {**DEFAULT_LENGTHS, **(lengths or {})},
        "mix": mix or None,
        "review_mode": review,
        "seed": seed,
        "domain": domain or None,
        "pilot": bool(config.get("pilot")),
        "run_config": config.get("run_config") or None,
    }
    for key in ("transcripts", "min_exchanges", "max_tokens", "in_flight"):
        if config.get(key) is not None:
            out[key] = int(config[key])
    return out


def _first_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(err).splitlines()[0]
