"""Reports about someone else: a friend's partner who hits her, a colleague who says he will stab
someone, a brother who wrote that he is killing himself.

Issue 13 asks the net to cover third person as well as first. Its lexicon was written mostly
around "I" and "me", and its fresh sets showed the gap: a partner of *anyone's* friend or sister
(not only of "my mother"), a threat passed on ("he says he's going to stab…"), and German's
verb-final subordinate clause ("…dass er sich heute umbringt"). Each class has a pattern per
language; the look-alikes that share the words (a boyfriend who hits the gym, a German "he'll be
the death of me") stay quiet.

Messages here are written for these tests, never copied from the corpus.
"""

from __future__ import annotations

import pytest

from actors.safety import load_safety_net
from tests.test_safety_phrasing import _lexicon_hits


@pytest.fixture(scope="module")
def net():
    return load_safety_net(None)


REPORTS = [
    ("danger_from_others", "my cousin's husband chokes her when he loses at cards"),
    ("danger_from_others", "el marido de mi vecina la golpea casi cada fin de semana"),
    ("danger_from_others", "il fidanzato di mia cugina la picchia e lei lo difende pure"),
    ("danger_from_others", "o padrasto da minha sobrinha bate nela quando a mãe sai"),
    ("danger_from_others", "le mari de ma voisine la frappe, j'entends tout à travers le mur"),
    ("danger_from_others", "der freund von meiner cousine schlägt sie und sie erzählt es keinem"),
    ("harm_to_others", "my neighbour told me he's gonna stab the landlord if he comes round again"),
    ("harm_to_others", "mi cuñado dice que va a apuñalar al vecino del quinto"),
    ("harm_to_others", "mio cognato dice che accoltella il vicino se lo rivede"),
    ("harm_to_others", "meu cunhado disse que vai esfaquear o vizinho"),
    ("harm_to_others", "mon beau-frère dit qu'il va poignarder le voisin"),
    ("harm_to_others", "mein schwager hat gesagt dass er den nachbarn absticht"),
    ("intent", "meine nichte hat geschrieben dass sie sich am freitag umbringt"),
    ("active_ideation", "mein onkel sagt dass er sich das leben nehmen will"),
    ("attempt", "my cousin is on the motorway bridge and isn't answering"),
    ("attempt", "mi hermana está encima del viaducto y no contesta"),
    ("attempt", "ma sœur est sur le pont et répond plus"),
    ("attempt", "meine schwester steht auf der autobahnbrücke und geht nicht ans telefon"),
    ("attempt", "minha irmã tá em cima do viaduto e não atende"),
    ("attempt", "mia sorella è sul ponte e non risponde"),
    ("self_harm", "my niece burns herself with a lighter when she's angry"),
    ("self_harm", "mi sobrina se quema con el mechero cuando se enfada"),
    ("self_harm", "ma nièce se brûle avec un briquet quand elle est en colère"),
    ("self_harm", "meine nichte verbrennt sich mit dem feuerzeug, wenn sie wütend ist"),
    ("self_harm", "minha sobrinha se queima com isqueiro quando fica com raiva"),
    ("self_harm", "mia nipote si brucia con l'accendino quando è arrabbiata"),
    ("plan_preparation", "my dad keeps buying painkillers at different pharmacies"),
    ("plan_preparation", "mi padre va comprando pastillas en farmacias distintas"),
    ("plan_preparation", "mon père achète des cachets dans plusieurs pharmacies"),
    ("plan_preparation", "mein vater kauft tabletten in verschiedenen apotheken"),
    ("plan_preparation", "meu pai anda comprando remédios em farmácias diferentes"),
    ("plan_preparation", "mio padre compra pastiglie in farmacie diverse"),
    ("danger_from_others", "letzte woche hat ihr freund sie gewürgt"),
    ("harm_to_others", "ich hab angst, dass ich meinem chef was antue"),
    ("harm_to_others", "tenho vontade de o esfaquear quando ele fala assim"),
    ("harm_to_others", "ho voglia di fargli del male quando mi umilia"),
    ("command_hallucinations", "as vozes dizem que tenho de magoar a minha mãe"),
]

LOOKALIKES = [
    "my sister's boyfriend hits the gym every morning at six",
    "el novio de mi prima le pega a la pelota con una fuerza increíble",
    "mein kumpel sagt, sein chef bringt ihn noch um mit den überstunden",
    "meine tante hat erzählt, dass sich ihr nachbar vor jahren das leben genommen hat, sie denkt oft an ihn",
    "mon frère dit qu'il va planter sa tente au bord du lac",
    "my uncle says he's gonna shoot the wedding video himself",
    "mi hermano dice que va a disparar a puerta en cuanto pueda",
    "il mio amico dice che spara a zero su tutti i politici",
    "my brother is on the bridge taking photos of the sunset",
    "meine schwester steht auf der brücke und macht fotos",
    "my mum burned herself on the stove making jam",
    "my dad buys his blood pressure pills at the pharmacy near work",
    "ich würde ihr nie etwas antun",
    "ho voglia di farle una sorpresa per il compleanno",
]


@pytest.mark.parametrize(("category", "text"), REPORTS)
def test_a_report_about_someone_else_raises_the_panel_from_the_lexicon(net, category, text):
    assert category in _lexicon_hits(net, text)
    assert net.check(text).flagged


@pytest.mark.parametrize("text", LOOKALIKES)
def test_third_person_lookalikes_do_not_match_the_lexicon(net, text):
    assert not _lexicon_hits(net, text)
