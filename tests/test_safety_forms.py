"""Forms of crisis talk the net used to miss, and the everyday uses of the same words.

Reports about someone else (issue 13 asks for third person as well as first): the lexicon
was written mostly around "I" and "me", and fresh sets showed the gap: a partner of *anyone's*
friend or sister who hits her, a threat passed on ("he says he's going to stab…"), German's
verb-final clause ("…dass er sich heute umbringt"), a friend on a bridge who no longer answers.

Grammar and classic forms (the fresh tuning sets, now the train-7 files):

* the present said as a promise ("si no me contesta me mato", "eu me mato") and third-person
  or German forms of taking one's life ("si toglie la vita", "ich nehme mir das leben");
* an overdose told as "the rest of" the pills, often beside a drink and a laugh (a joke marker
  does not cancel an attempt: `jokes_cancel` in safety.yaml);
* not waking up said as a wish or a condition, hoping a lorry hits one, asking God to take one;
* "X is the day" said with relief, "tonight it's over 🙂"; learners' grammar.

The same words in everyday use stay quiet: a boyfriend who hits the gym, "me mato estudiando",
"the rest of my antibiotics like the doctor said", a hand burnt on an oven tray while baking.

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

FORMS = [
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
    ("passive_wish", "cada noche pienso que ojalá no me despertara mañana"),
    ("passive_wish", "ce serait tellement plus simple si je me réveillais pas demain"),
    ("passive_wish", "wär einfacher, wenn ich morgen früh nicht mehr aufwache"),
    ("passive_wish", "deito-me todas as noites a desejar não acordar"),
    ("passive_wish", "sarebbe più semplice se domani non mi svegliassi"),
    ("passive_wish", "en el tren espero que un camión me embista cuando cruzo"),
    ("passive_wish", "parfois j'espère qu'une voiture me fauche"),
    ("passive_wish", "ich hoffe manchmal, dass mir ein lkw reinfährt"),
    ("passive_wish", "fico torcendo pra um carro me atropelar"),
    ("passive_wish", "spero che una macchina mi travolga"),
    ("passive_wish", "my grandad keeps saying he wishes god would take him soon"),
    ("passive_wish", "mi abuelo dice que ojalá dios se lo lleve ya"),
    ("passive_wish", "ma grand-mère voudrait que le bon dieu vienne la chercher"),
    ("passive_wish", "mein opa sagt, der herrgott soll ihn endlich holen"),
    ("passive_wish", "meu avô diz que deus podia levar ele"),
    ("passive_wish", "mio nonno dice che il signore se lo prendesse pure"),
    ("passive_wish", "soy una carga para todos, preferiría no existir"),
    ("passive_wish", "sono solo un peso, preferirei non esserci più"),
    ("intent", "friday is the day. i feel strangely calm"),
    ("intent", "el sábado es el día, estoy en paz"),
    ("intent", "samedi c'est le jour, je me sens apaisée"),
    ("intent", "samstag ist der tag, ich bin ganz ruhig"),
    ("intent", "sábado é o dia, estou em paz"),
    ("intent", "sabato è il giorno, mi sento serena"),
    ("intent", "tonight it's over 🙂"),
    ("intent", "esta noche se acaba todo 😌"),
    ("intent", "heute nacht ist schluss, endlich ruhe"),
    ("intent", "übermorgen bin ich nicht mehr da, das steht fest"),
    ("intent", "já decidi, vou-me embora de vez"),
    ("intent", "stanotte quando tutti dormono la faccio finita"),
    ("self_harm", "me quemo las piernas con el mechero cuando nadie me ve"),
    ("self_harm", "je me suis brûlé le bras avec une cigarette exprès"),
    ("self_harm", "queimei o braço com o isqueiro de propósito"),
    ("self_harm", "mi sono bruciata la pelle con l'accendino"),
    ("self_harm", "mi sono graffiata le cosce fino a farle sanguinare"),
    ("attempt", "just downed a whole bottle of weedkiller"),
    ("attempt", "hab rattengift runtergeschluckt"),
    ("attempt", "i'm sitting on the ledge of the car park roof"),
    ("attempt", "ich stehe auf der brücke, ganz vorne am rand"),
    ("attempt", "tô sentado no parapeito da janela do prédio"),
    ("attempt", "me he cortado la muñeca y no para de sangrar"),
    ("command_hallucinations", "die stimmen sagen spring, spring, die ganze nacht"),
    ("command_hallucinations", "as vozes mandam eu me cortar, corta-te, corta-te"),
    ("attempt", "I have swallowed a good many of my blood pressure tablets, I fear"),
    ("attempt", "i'm on the wrong side of the railing on the overpass"),
    ("attempt", "estoy en el puente, al otro lado de la barandilla"),
    ("attempt", "je suis sur le pont, de l'autre côté de la rambarde"),
    ("attempt", "ich stehe auf der brücke, auf der anderen seite vom geländer"),
    ("attempt", "estou na ponte, do outro lado da grade"),
    ("attempt", "sono sul viadotto, dall'altra parte del parapetto"),
    ("self_harm", "ich schneide mich am handgelenk wenn ich traurig bin"),
    ("passive_wish", "ich wünsche manchmal, ich bin nie geboren"),
    ("passive_wish", "je souhaite de ne plus exister"),
    ("active_ideation", "voglio finire la mia vita"),
    ("active_ideation", "quiero irme de esta vida"),
    ("passive_wish", "já não peço nada a não ser que Deus me leve"),
    ("command_hallucinations", "dice che una voce gli ordina di buttarsi"),
    ("command_hallucinations", "la voix me dit tue-toi"),
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
    "ojalá no me despierte el vecino con el taladro",
    "ce serait mieux si je me réveillais pas à cinq heures",
    "seria melhor se eu não acordasse tão cedo",
    "spero di non svegliarmi troppo tardi domani",
    "espero que el camión de la mudanza llegue pronto",
    "spero che il camion del trasloco arrivi in tempo",
    "preferiría no estar aquí en esta reunión",
    "preferirei non esserci alla cena di sabato",
    "que dios te bendiga",
    "sunday is the day of the marathon, i feel calm",
    "el domingo es el día de la boda, estoy tranquila",
    "dimanche c'est le jour du déménagement, je suis calme",
    "ce soir c'est fini les partiels 🙂",
    "esta noche se acaba el curso 🙂",
    "vou embora de vez do facebook",
    "me quemé la mano sacando la bandeja del horno",
    "je me suis brûlé la main sur la plaque en faisant des crêpes",
    "queimei a mão no tabuleiro do forno a fazer um bolo",
    "mi sono bruciato la mano con la teglia facendo la pizza",
    "me corté con la mandolina cortando pepino",
    "the cat is on the other side of the fence",
    "ich schneide mich beim rasieren immer am kinn",
    "welche tabletten sind am gefährlichsten für hunde?",
    "a não ser que chova, vamos à praia",
]


@pytest.mark.parametrize(("category", "text"), REPORTS + FORMS)
def test_the_crisis_form_is_read_by_the_lexicon(net, category, text):
    assert category in _lexicon_hits(net, text)
    assert net.check(text).flagged


@pytest.mark.parametrize("text", LOOKALIKES + EVERYDAY)
def test_the_everyday_use_does_not_match_the_lexicon(net, text):
    assert not _lexicon_hits(net, text)
