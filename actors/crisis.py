"""Crisis signals in a user's chat message: a pure, conservative phrase matcher.

Why a phrase matcher and not the model: the chat model is a 135M-parameter
coach that may answer a message about suicide with a breathing exercise. The
resources panel must appear *regardless of what the model says*, so the
decision is made here, on the user's own words, before the reply starts —
deterministically, offline, and testable case by case.

What it looks for (``Category``):

* ``suicide`` — direct ("I want to kill myself", "suicidal") and indirect
  phrasings ("everyone would be better off without me", "I want to go to
  sleep and not wake up", "I've been giving my things away", "I won't be
  around much longer", saving pills, goodbye letters);
* ``self_harm`` — cutting, burning or hurting oneself as an act or an urge,
  not an accident ("I cut my finger chopping onions" is not a signal);
* ``harm_to_others`` — intent or fear of hurting a person ("I'm going to
  hurt him", "I'm scared I might hurt my baby"), not idioms about things
  ("kill some time", "I could kill for a coffee", "kill the process").

The bias is deliberate: a false alarm costs one calm, dismissible panel; a
miss costs far more. So negation is honoured only where it is unambiguous —
a negator *immediately* before a direct phrase ("I'm not suicidal", "I would
never kill myself", "I don't want to die") — and never for phrasings whose
meaning *is* a negation ("I don't want to be here anymore"). "I'm not saying
I'm suicidal, but…" still counts. Figures of speech that use the same words
("this deadline is killing me", "my phone died", "suicide prevention
training") are excluded by the patterns' shape, not by a list of exceptions
to a bare keyword, except for the word "suicide" itself, whose non-personal
uses (prevention, awareness, statistics …) are named.

This is a safety net, not a classifier: it does not diagnose, it never
blocks the conversation, and it is no substitute for the person's own
judgement or a professional's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Category = Literal["suicide", "self_harm", "harm_to_others"]

# Small building blocks, kept readable. Text is normalised first (lower case,
# straight apostrophes, single spaces), so patterns only see one spelling.
_DONT = r"(?:don'?t|do not|dont)"
_ME_GONE = r"(?:gone|dead|not here|not around|never born)"
_PERSON = (
    r"(?:him|her|them|someone|somebody|anyone|people|everyone|everybody|"
    r"my (?:\w+ )?(?:wife|husband|partner|boyfriend|girlfriend|boss|manager|mum|mom|mother|dad|father|"
    r"brother|sister|son|daughter|baby|kids?|children|child|family|ex|neighbou?r|colleague|coworker|"
    r"co-worker|flatmate|roommate|friend|teacher)s?|the (?:baby|kids|children)|"
    r"(?:that|this) (?:guy|man|woman|person))"
)
_HARM_VERB = r"(?:kill|hurt|harm|stab|shoot|strangle|poison|attack|beat up|murder)"
_HARM_ING = r"(?:killing|hurting|harming|stabbing|shooting|strangling|poisoning|attacking|beating up|murdering)"
_SELF_VERB = r"(?:cut|cutting|hurt|hurting|harm|harming|burn|burning|starve|starving)"


@dataclass(frozen=True)
class _Pattern:
    category: Category
    regex: re.Pattern[str]
    negatable: bool  # a negator right before the match cancels it ("not suicidal")
    name: str


def _p(category: Category, name: str, pattern: str, *, negatable: bool = False) -> _Pattern:
    return _Pattern(category, re.compile(pattern), negatable, name)


PATTERNS: tuple[_Pattern, ...] = (
    # --- suicide: direct ---------------------------------------------------------------
    _p("suicide", "kill myself", r"\b(?:kill|killing|killed) myself\b", negatable=True),
    _p("suicide", "suicidal", r"\bsuicidal\b", negatable=True),
    _p("suicide", "suicide",
       r"\bsuicide\b(?! (?:prevention|awareness|hotline|helpline|line|squad|rates?|statistics|stats|"
       r"research|training|doors?|mission))", negatable=True),
    _p("suicide", "end my life", r"\b(?:end|ending|take|taking|took) (?:my|my own) life\b", negatable=True),
    _p("suicide", "end it all", r"\b(?:end|ending|finish|finishing) it all\b|\bend it (?:now|tonight|soon|for good)\b",
       negatable=True),
    _p("suicide", "want to die",
       r"\b(?:want|wanna|wanted|wanting|ready|deserve) (?:to )?die\b|\bwish(?:ing)? (?:i|to) (?:could |would )?die\b",
       negatable=True),
    _p("suicide", "wish I was dead", r"\bwish(?:ing)? i (?:was|were|'d be|would be) dead\b|\bbetter off dead\b"),
    _p("suicide", "never been born", r"\bwish(?:ing)? i(?:'d| had) never been born\b"),
    _p("suicide", "not want to live",
       rf"\b{_DONT} (?:want|wanna|feel like i want) to (?:live|be alive|exist|be here|wake up|go on|keep living)"
       r"(?: anymore| any more| any longer)?\b"),
    _p("suicide", "not deserve to live", rf"\b(?:{_DONT}|do not) deserve to (?:live|be alive|exist)\b"),
    _p("suicide", "tired of living",
       r"\b(?:tired|sick|done) (?:of|with) (?:living|being alive|life|existing)\b(?! (?:in|at|as|with|on)\b)"),
    _p("suicide", "no point living",
       r"\bno (?:point|reason) (?:in |to |for )?(?:living|live|being alive|going on|carrying on|keep going)\b|"
       r"\bwhat(?:'s| is) the point (?:of|in) (?:living|being alive|going on|life)\b"),
    _p("suicide", "overdose", r"\boverdos(?:e|ed|ing)\b", negatable=True),
    _p("suicide", "plan to end it", r"\b(?:a |my )?plan (?:to|for) end(?:ing)? it\b"),
    _p("suicide", "jump off",
       r"\bjump(?:ing|ed)? (?:off|from|in front of) (?:a|the|that|my) (?:\w+ )?"
       r"(?:bridge|building|roof|train|cliff|balcony|car|bus|tower)\b"),
    # --- suicide: indirect ----------------------------------------------------------------
    _p("suicide", "better off without me",
       r"\b(?:be|are|is) better off without me\b|\bbetter off if i (?:was|were|wasn'?t|weren'?t|died|disappeared)\b"),
    _p("suicide", "sleep and not wake up",
       r"\b(?:sleep|go to sleep|fall asleep|close my eyes) and (?:not|never) (?:wake|open)(?: up)?\b|"
       r"\b(?:hope|wish|pray) i (?:don'?t|do not|never|won'?t|wouldn'?t|didn'?t) wake up\b|"
       r"\bnot wake up (?:again|tomorrow|in the morning|ever)\b"),
    _p("suicide", "giving things away",
       r"\b(?:giv(?:e|ing)|gave|given) (?:away )?(?:all )?(?:of )?my (?:things|stuff|belongings|possessions|"
       r"stuff|valuables|pets?)(?: away)?\b"),
    _p("suicide", "affairs in order", r"\b(?:put|putting|get|getting|got) my affairs in order\b"),
    _p("suicide", "saying goodbye",
       r"\b(?:saying|said|say) (?:my )?goodbyes? to (?:everyone|everybody|my family|people|my friends)\b|"
       r"\b(?:wrote|write|writing|written|left|leave|leaving) (?:a |my )?(?:goodbye|suicide|farewell) "
       r"(?:note|letter|message)s?\b"),
    _p("suicide", "won't be around",
       r"\b(?:won'?t|will not|wont) be (?:around|here) (?:much longer|for long|anymore|any more|next \w+)\b|"
       r"\bnot (?:be|going to be) around (?:much longer|for long|anymore)\b"),
    _p("suicide", "disappear forever",
       r"\b(?:want|wish|wanna|like) (?:to |i could )?(?:just )?(?:disappear|vanish|stop existing|not exist)"
       r"(?: forever| for good| completely| permanently)\b|\bstop existing\b|\bcease to exist\b"),
    _p("suicide", "nobody would notice",
       r"\b(?:nobody|no one|no-one|noone) would (?:even |really )?(?:miss me|(?:notice|care) if i (?:was gone|"
       r"were gone|was dead|were dead|died|disappeared|wasn'?t here|weren'?t here|wasn'?t around))\b"),
    _p("suicide", "saving pills",
       r"\b(?:saving|saved|stockpil(?:e|ing|ed)|hoard(?:ing|ed)?|collect(?:ing|ed)?|storing|kept|keeping)"
       r" (?:up )?(?:all )?(?:of )?(?:my |some |the )?(?:pills|tablets|meds|medication|painkillers|sleeping pills)\b|"
       r"\btak(?:e|ing) all (?:of )?(?:my |the )?(?:pills|tablets|meds|medication|painkillers)\b"),
    _p("suicide", "want it all to end",
       r"\bwant (?:it all|everything|all of (?:it|this)|the pain) to (?:end|stop) (?:for good|forever|permanently)\b|"
       r"\bwant (?:it all|everything) to (?:end|be over)\b"),
    _p("suicide", "can't go on", r"\bcan'?t (?:go on|carry on)(?: anymore| any more| like this| living)?\b"),
    # --- self-harm ---------------------------------------------------------------------------
    _p("self_harm", "self-harm", r"\bself[- ]?harm(?:ing|ed)?\b|\bself[- ]?injur(?:y|ing|e)\b", negatable=True),
    _p("self_harm", "urge to hurt myself",
       rf"\b(?:want|wanna|urges?|going|gonna|tempted|thinking about|thought about|feel like|need) (?:to )?"
       rf"{_SELF_VERB} myself\b", negatable=True),
    _p("self_harm", "hurting myself (habit)",
       rf"\b(?:been|started|keep|kept|still|stopped|began|am|i'm) {_SELF_VERB} myself\b|"
       rf"\b{_SELF_VERB} myself (?:again|on purpose|deliberately|intentionally|to feel|to cope|every time|so that)\b|"
       r"\bcutting again\b|\b(?:cut|burn|scratch)(?:ing)? (?:my )?(?:arms?|wrists?|legs?|thighs?|skin) "
       r"(?:again|on purpose|to feel|to cope|when|until)\b", negatable=True),
    # --- harm to others ---------------------------------------------------------------------
    _p("harm_to_others", "intend to hurt someone",
       rf"\b(?:want|wanna|going|gonna|plan|planning|intend|ready|tempted|about|urge|urges) (?:to )?"
       rf"{_HARM_VERB} {_PERSON}\b", negatable=True),
    _p("harm_to_others", "thinking of hurting someone",
       rf"\b(?:thinking|thought|fantasi[sz]e|fantasi[sz]ing|dream|dreaming|think) (?:about|of) {_HARM_ING} {_PERSON}\b"),
    _p("harm_to_others", "afraid I'll hurt someone",
       rf"\b(?:scared|afraid|worried|terrified|frightened) (?:that )?i(?:'ll| will| might| could| would|'d| may) "
       rf"(?:\w+ )?{_HARM_VERB} {_PERSON}\b"),
    _p("harm_to_others", "weapon to work",
       r"\b(?:bring|bringing|take|taking|carry|carrying) (?:a|my|the) (?:gun|knife|weapon|rifle|pistol) to "
       r"(?:work|school|the office|class|his|her|their)\b"),
    _p("harm_to_others", "make them pay with violence",
       rf"\bi(?:'ll| will|'m going to| am going to) {_HARM_VERB} {_PERSON}\b", negatable=True),
)

# A negator directly before the phrase cancels a negatable match; only a few
# auxiliary words may sit between ("not going to", "never really"), so
# "I'm not saying I'm suicidal" still counts. Kept short on purpose: see the
# module docstring.
_NEGATION = re.compile(
    r"\b(?:not|never|no|don'?t|dont|do not|didn'?t|won'?t|wouldn'?t|isn'?t|aren'?t|wasn'?t|nor|without)"
    r"(?: (?:going|gonna|really|even|ever|actually|feeling|be|been|planning))?(?: to)? ?$"
)
_CLAUSE_BREAK = re.compile(r"[.!?;:\n]|,\s*(?:but|and|so|though|although)\b|\bbut\b")


@dataclass(frozen=True)
class CrisisSignal:
    """One match: what kind of signal, which pattern, and the words that matched."""

    category: Category
    pattern: str
    phrase: str


def normalise(text: str) -> str:
    """Lower case, straight quotes, one space: so patterns need only one spelling."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return re.sub(r"\s+", " ", text).strip()


def _negated(text: str, start: int) -> bool:
    """True when a negator sits right before ``start`` within the same clause."""
    before = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end():] if breaks else before
    clause = re.sub(r"\bi(?:'m| am)\b", "", clause).strip()  # "I'm not suicidal" → "not"
    return bool(_NEGATION.search(clause))


def detect_crisis(text: str) -> list[CrisisSignal]:
    """Every crisis signal in ``text`` (empty when there is none). Pure: no I/O, no state."""
    norm = normalise(text)
    found: list[CrisisSignal] = []
    for pattern in PATTERNS:
        for match in pattern.regex.finditer(norm):
            if pattern.negatable and _negated(norm, match.start()):
                continue
            found.append(CrisisSignal(pattern.category, pattern.name, match.group(0)))
            break  # one hit per pattern is enough to explain the panel
    return found


def has_crisis_signal(text: str) -> bool:
    """Whether the resources panel should appear for this user message."""
    return bool(detect_crisis(text))
