"""Verb forms and leftovers the crisis net used to miss, and the everyday uses of the same words.

Issue 13's fresh sets (dev-6, dev-7-long) showed three gaps that are about grammar, not
vocabulary: the present tense said as a promise ("si no me contesta me mato", "eu me mato"),
third-person and German forms of taking one's life ("si toglie la vita", "ich nehme mir das
leben"), and an overdose told as "the rest of" the pills, often next to a drink and a laugh
("half a bottle of vodka and the rest of my sleeping pills lol": a joke marker does not cancel
that). The same words in everyday use ("me mato estudiando", "the rest of my antibiotics like
the doctor said", "disappear from social media for a while") stay quiet.

Messages here are written for these tests, never copied from the corpus.
"""

from __future__ import annotations

import pytest

from actors.safety import load_safety_net
from tests.test_safety_phrasing import _lexicon_hits


@pytest.fixture(scope="module")
def net():
    return load_safety_net(None)


CRISIS = [
    ("active_ideation", "si mañana no me llama me mato"),
    ("active_ideation", "hoy me mato, ya está"),
    ("active_ideation", "se ela me deixar eu me mato"),
    ("active_ideation", "minha irmã disse que vai tirar a própria vida"),
    ("active_ideation", "mio fratello dice che si toglie la vita"),
    ("active_ideation", "la mia amica dice che la fa finita"),
    ("active_ideation", "ich nehme mir bald das leben"),
    ("attempt", "i've taken the rest of my painkillers"),
    ("attempt", "two glasses of wine and then the rest of my sleeping tablets haha"),
    ("attempt", "me he tragado el resto de los calmantes"),
    ("attempt", "j'ai avalé le reste de mes cachets"),
    ("attempt", "hab grad den rest meiner schlaftabletten geschluckt"),
    ("attempt", "uma garrafa de vinho e engoli o resto dos comprimidos kkkk"),
    ("attempt", "ho ingoiato il resto delle pastiglie"),
    ("passive_wish", "i want to disappear forever"),
    ("passive_wish", "j'aimerais disparaître de ce monde"),
]

EVERYDAY = [
    "me mato estudiando para las oposiciones",
    "me mato a trabajar y nadie me lo agradece",
    "eu me mato de trabalhar nessa firma",
    "ele disse que a fez finita com a namorada",
    "dice che la fa finita con il suo ragazzo",
    "la faccio finita con questa dieta",
    "ich nehme mir das leben nicht so schwer wie früher",
    "i took the rest of my antibiotics like the doctor said",
    "me tomé el resto del antibiótico como me dijo la médica",
    "i want to disappear from social media for a while",
    "j'ai envie de disparaître des réseaux sociaux",
    "quero sumir do instagram por uns dias",
    "voglio sparire dai social",
    "vorrei sparire dall'ufficio per una settimana",
]


@pytest.mark.parametrize(("category", "text"), CRISIS)
def test_the_form_is_read_by_the_lexicon(net, category, text):
    assert category in _lexicon_hits(net, text)
    assert net.check(text).flagged


@pytest.mark.parametrize("text", EVERYDAY)
def test_the_everyday_use_does_not_match_the_lexicon(net, text):
    assert not _lexicon_hits(net, text)
