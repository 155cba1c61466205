"""Forms and leftovers the crisis net used to miss, and the everyday uses of the same words.

Issue 13's fresh tuning sets (now the train-7 files) showed gaps of grammar and classic form rather
than vocabulary:

* the present said as a promise ("si no me contesta me mato", "eu me mato") and third-person
  or German forms of taking one's life ("si toglie la vita", "ich nehme mir das leben");
* an overdose told as "the rest of" the pills, often beside a drink and a laugh ("half a bottle
  of vodka and the rest of my sleeping pills lol": a joke marker does not cancel that);
* not waking up said as a wish or a condition ("plus simple si je me réveillais pas demain"),
  hoping a lorry hits one, asking God to take one;
* "X is the day" said with relief, "tonight it's over 🙂".

The same words in everyday use stay quiet: "me mato estudiando", "the rest of my antibiotics
like the doctor said", "disappear from social media for a while", a hand burnt on an oven tray
while baking (wherever in the sentence the oven comes).

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


@pytest.mark.parametrize(("category", "text"), CRISIS)
def test_the_form_is_read_by_the_lexicon(net, category, text):
    assert category in _lexicon_hits(net, text)
    assert net.check(text).flagged


@pytest.mark.parametrize("text", EVERYDAY)
def test_the_everyday_use_does_not_match_the_lexicon(net, text):
    assert not _lexicon_hits(net, text)
