"""The shape of a pack's safety section and its lexicons, as pydantic models.

The crisis net is domain data: which categories exist and how urgent each is
(their order), which languages are covered, what the panel says in each
country, what the model is told when a message is flagged, and the targets
`coach safety eval` holds the net to. The code stays domain-agnostic; the
therapy pack fills these files. Models forbid unknown keys so a misspelt
field is reported, not ignored; rules spanning files live in `checks`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CATEGORY_ID = r"^[a-z][a-z0-9_]*$"
BENIGN = "none"


class SafetyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryDef(SafetyModel):
    id: str = Field(pattern=CATEGORY_ID)
    name: str = Field(min_length=1)
    description: str = ""
    jokes_cancel: bool = True
    """Whether a joke marker ("lol", "jaja", "😂") cancels this category's patterns. Hyperbole is
    said in jest ("I'll kill him lol"); an act already done usually is not, and a laugh beside
    it hides how bad it is ("cut again this week lol"): set false for those categories."""
    figurative: bool = False
    """Whether this category's phrases are everyday figures of speech too ("I could kill him",
    "I want to die of shame", a child's tantrum quoted): the classifier may then dismiss a hit
    of such categories alone (`ClassifierSettings.dismiss_below`). Leave false where a matched
    phrase must always stand: a plan, an attempt, a goodbye."""

    @field_validator("id")
    @classmethod
    def _not_benign(cls, value: str) -> str:
        if value == BENIGN:
            raise ValueError(f"'{BENIGN}' is the benign label, not a category")
        return value


class Thresholds(SafetyModel):
    """What `coach safety eval` holds the net to; below any of them it exits 1."""

    recall: float = Field(default=0.95, ge=0.0, le=1.0)
    category_recall: float = Field(default=0.90, ge=0.0, le=1.0)
    language_recall: float = Field(default=0.90, ge=0.0, le=1.0)
    false_alarm_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    p99_ms: float = Field(default=5.0, gt=0.0)
    min_messages: int = Field(default=5, ge=1)
    """A category or language with fewer labelled messages than this is reported but not held to a target."""


class Resource(SafetyModel):
    name: str = Field(min_length=1)
    """How the country is named in the settings ("United States")."""
    text: str = Field(min_length=1)
    """Markdown lines shown in the panel: helplines and the emergency number."""
    categories: dict[str, str] = {}
    """Extra lines by category (a domestic-violence line for danger_from_others)."""


class Steering(SafetyModel):
    general: str = Field(min_length=1)
    """The crisis instruction added to the turn's prompt whenever any layer fires."""
    categories: dict[str, str] = {}
    """Added after the general instruction for each category found, most urgent first."""


class ClassifierSettings(SafetyModel):
    file: str = "classifier.npz"
    train: list[str] = ["corpus/train.jsonl"]
    """The labelled files `coach safety train` learns from, in order (never the test split)."""
    max_false_alarm: float = Field(default=0.02, ge=0.0, le=0.5)
    """The decision threshold is the lowest whose cross-validated false-alarm rate stays under this."""
    outside_budget: list[str] = []
    """Files of `train` learnt from but left out of that rate: easy benign messages (short chat
    turns) would lower the threshold by their number alone. Each must also be in `train`."""
    framed_threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    """Where the lexicon found the message framed (a film, a history lesson, a recovery) and
    nothing fired, the classifier flags only at or above this score; None: never there. Where
    it read its phrase denied ("I would never…"), the classifier is never asked."""
    segment_threshold: float | None = Field(default=None, ge=0.5, le=1.0)
    """In a message longer than one segment (a few consecutive sentences, `segments`), each
    segment of at least `min_words` words is also read alone and flags at or above this score;
    in a message of one segment and three or more sentences, each two consecutive sentences:
    one alarming sentence among an update's ordinary news is diluted in the score of the
    whole. None: passages are never read alone."""
    dismiss_below: float = Field(default=0.0, ge=0.0, le=0.5)
    """A lexicon or typo-tolerant hit of figurative categories only (`CategoryDef.figurative`) is
    dismissed when the classifier, reading the whole message, scores it below this: 0 never does."""
    min_words: int = Field(default=3, ge=1, le=50)
    """The classifier neither flags nor dismisses a message of fewer words (an emoji counts as
    one): on "bye" or "hiya" its score is its prior, not a reading. The word and context
    layers still read every message."""
    folds: int = Field(default=5, ge=2, le=20)
    seed: int = 0

    @model_validator(mode="after")
    def _outside_budget_is_trained_on(self) -> ClassifierSettings:
        stray = [name for name in self.outside_budget if name not in self.train]
        if stray:
            raise ValueError(f"outside_budget lists files that are not in train: {', '.join(stray)}")
        return self


class SafetyConfig(SafetyModel):
    """`safety/safety.yaml`: the crisis net of a domain pack."""

    version: int = Field(default=1, ge=1)
    languages: list[str] = Field(min_length=1)
    lexicon_dir: str = "lexicon"
    categories: list[CategoryDef] = Field(min_length=1)
    """In order of urgency: the most urgent first."""
    context_window: int = Field(default=3, ge=0, le=10)
    """How many earlier user messages the context layer reads."""
    classifier: ClassifierSettings = ClassifierSettings()
    thresholds: Thresholds = Thresholds()
    steering: Steering
    resources: dict[str, Resource] = Field(min_length=1)
    """By country code (ISO 3166 alpha-2, upper case), plus the international fallback."""
    fallback_country: str = "INTL"
    model_prompt: str = Field(min_length=1)
    """The question the optional `safety` model role is asked; ``$categories`` lists the category ids."""

    @property
    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not code.isalpha() or not code.islower() or not 2 <= len(code) <= 3:
                raise ValueError(f"{code!r} is not a language code (ISO 639-1, lower case, e.g. 'en')")
        return value


class Pattern(SafetyModel):
    re: str = Field(min_length=1)
    negatable: bool = True
    """Whether a negation cue before the match, or inside it where the pattern does not spell it
    itself, cancels it ("I'm not suicidal"). False for phrasings where no cue should cancel."""
    mention: bool = False
    """Whether the pattern names the topic rather than telling an act, a wish or a plan ("self-harm",
    "automutilação"): a coursework question, a news item and a relapse all use the word, so,
    like a figure of speech, such a hit alone is left to the classifier to dismiss when it is
    near-certain the whole message is benign (`SafetyNet`)."""


PatternEntry = str | Pattern


class Negation(SafetyModel):
    cues: list[str] = []
    """Regular expressions for negators ("not", "never", "no(?! one)")."""
    scope: int = Field(default=3, ge=1, le=10)
    """How many words before a match a cue may stand and still negate it."""
    breaks: list[str] = []
    """Words that end a clause ("but", "pero"): a cue before one does not reach past it."""
    conditionals: list[str] = []
    """Words that open a condition ("if", "si", "wenn"): a cue among the few words after one
    negates the condition, not what follows it ("if she doesn't call back I'll kill myself")."""
    questions: list[str] = []
    """Regular expressions for a question that proposes what follows its negation ("why don't I
    just…", "por qué no…", "warum bringe ich mich nicht einfach…"), matched on the words just
    before a cue and ending there. Such a cue denies nothing: the match is left to the
    classifier, as after a distant past, instead of silencing it."""
    frames: list[str] = []
    """Distancing frames that reach further back than a negation: fiction, film and news
    ("the character", "an episode about"), a question put to the person ("asked if I")."""
    frame_scope: int = Field(default=6, ge=1, le=12)
    past: list[str] = []
    """A distant past ("years ago", "used to", "when I was a teen") anywhere before a match in its
    clause, or within ``frame_scope`` words after it: it cancels the match like a negation, but
    leaves the message to the classifier, which reads whether the danger is back ("years ago I
    tried, and tonight I'll finish it")."""
    recovery: list[str] = []
    """Markers, after a match, that it is told from the far side of recovery ("… but therapy
    helped, I'm fine now"), which reach to the end of the segment."""
    jokes: list[str] = []
    """Markers that the whole message is a joke ("jk", "just kidding"), anywhere in it; write
    them so a denial ("not joking") does not count."""


class CategoryLexicon(SafetyModel):
    patterns: list[PatternEntry] = []
    terms: list[str] = []
    """Slang and euphemisms matched as whole words ("kms", "unalive")."""
    emoji: list[str] = []
    """Emoji or symbols matched anywhere; only a category where one alone means danger."""


class ContextLexicon(SafetyModel):
    distress: list[PatternEntry] = []
    """Earlier messages that make an ambiguous follow-up dangerous ("I want it to stop")."""
    followup: dict[str, list[PatternEntry]] = {}
    """By category: messages harmless alone, urgent after distress ("I have them all here")."""


class LexiconFile(SafetyModel):
    """`lexicon/<language>.yaml`: one language's patterns, slang and cues."""

    language: str
    define: dict[str, str] = {}
    """Named pieces of pattern, used as ``{NAME}`` in later definitions and in patterns
    (``REFL: (?:my ?self|her ?self|…)``), so a word list is written once."""
    aliases: dict[str, str] = {}
    """Texting spellings read as the word they stand for (``nn`` → ``non``), whole words only.
    Every language's aliases apply to every message, so list only unambiguous ones."""
    stopwords: list[str] = []
    """Common words, for guessing a message's language when no pattern matched."""
    negation: Negation = Negation()
    key_terms: list[str] = []
    """Words worth correcting when misspelt by one letter (five letters or more), and worth
    looking for in the middle of a very long message."""
    categories: dict[str, CategoryLexicon] = {}
    context: ContextLexicon = ContextLexicon()
